"""The requestor's side of a BDX download: a sans-IO receiver-initiator (11.22).

Used by our emulated OTA requestors and by tests against our own sender. A
:class:`ReceiverTransfer` writes the received bytes to a sink (anything with ``write``), can
resume from a start offset, and can skip ahead with BlockQueryWithSkip:

    rx = ReceiverTransfer(b"image-1", sink, start_offset=4096)
    exchange.send(BDX, *rx.start())                # ReceiveInit
    for each message: out = rx.receive(opcode, payload)   # -> messages to send back
    rx.state is ReceiverState.DONE                 # after BlockEOF, BlockAckEOF is in ``out``

Receiver drive and sender drive are both spoken; which one is used is the sender's choice in
its ReceiveAccept among the ``modes`` we propose.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol

from matter_ota.bdx.messages import (
    BDX_VERSION,
    BdxError,
    BlockQueryWithSkip,
    CounterMessage,
    DataBlock,
    DriveMode,
    Opcode,
    ReceiveAccept,
    StatusCode,
    TransferInit,
)
from matter_ota.bdx.sender import MAX_BLOCK_SIZE, Send

_COUNTER_MOD = 1 << 32


class Sink(Protocol):
    """Where received bytes go (a file, a hash, a BytesIO)."""

    def write(self, data: bytes, /) -> object: ...


class ReceiverState(enum.Enum):
    IDLE = "idle"
    AWAIT_ACCEPT = "await_accept"
    AWAIT_BLOCK = "await_block"
    DONE = "done"
    FAILED = "failed"


_EXPECTED: dict[ReceiverState, frozenset[Opcode]] = {
    ReceiverState.AWAIT_ACCEPT: frozenset({Opcode.RECEIVE_ACCEPT}),
    ReceiverState.AWAIT_BLOCK: frozenset({Opcode.BLOCK, Opcode.BLOCK_EOF}),
}


class ReceiverTransfer:
    """Download one file designator into ``sink``.

    ``skips`` maps a block counter to the bytes to skip before that block (sent as
    BlockQueryWithSkip, receiver drive only).
    """

    def __init__(
        self,
        designator: bytes,
        sink: Sink,
        *,
        start_offset: int = 0,
        max_length: int = 0,
        max_block_size: int = MAX_BLOCK_SIZE,
        modes: DriveMode = DriveMode.RECEIVER_DRIVE,
        skips: Mapping[int, int] | None = None,
    ) -> None:
        self.designator = designator
        self.sink = sink
        self.start_offset = start_offset
        self.max_length = max_length
        self.max_block_size = max_block_size
        self.modes = modes
        self.skips = dict(skips or {})
        self.state = ReceiverState.IDLE
        self.accept: ReceiveAccept | None = None
        self.bytes_received = 0
        self.bytes_skipped = 0
        self.blocks = 0
        self._query_counter = 0  # the counter of the block we expect next

    @property
    def length(self) -> int:
        """The definite length the sender announced (0: indefinite or not yet known)."""
        return 0 if self.accept is None else self.accept.length

    def start(self) -> Send:
        """The ReceiveInit to send on a new exchange."""
        if self.state is not ReceiverState.IDLE:
            raise RuntimeError("transfer already started")
        self.state = ReceiverState.AWAIT_ACCEPT
        init = TransferInit(
            modes=self.modes,
            max_block_size=self.max_block_size,
            file_designator=self.designator,
            start_offset=self.start_offset,
            max_length=self.max_length,
        )
        return Send(Opcode.RECEIVE_INIT, init.encode())

    def receive(self, opcode: int, payload: bytes) -> list[Send]:
        """Handle one BDX message from the sender; BdxError (state unchanged) if wrong."""
        expected = _EXPECTED.get(self.state, frozenset())
        if opcode not in expected:
            raise BdxError(
                StatusCode.UNEXPECTED_MESSAGE,
                f"opcode 0x{opcode:02x} while {self.state.value}",
            )
        if opcode == Opcode.RECEIVE_ACCEPT:
            return self._on_accept(ReceiveAccept.decode(payload))
        return self._on_block(DataBlock.decode(payload), opcode == Opcode.BLOCK_EOF)

    def failed(self) -> None:
        """The transfer ended abnormally (peer StatusReport, timeout)."""
        if self.state is not ReceiverState.DONE:
            self.state = ReceiverState.FAILED

    def _on_accept(self, accept: ReceiveAccept) -> list[Send]:
        mode = accept.mode
        if mode not in (DriveMode.RECEIVER_DRIVE, DriveMode.SENDER_DRIVE) or mode not in self.modes:
            raise BdxError(StatusCode.TRANSFER_METHOD_NOT_SUPPORTED,
                           f"sender chose modes 0x{int(mode):02x}")
        if accept.version != BDX_VERSION:
            raise BdxError(StatusCode.VERSION_NOT_SUPPORTED, f"version {accept.version}")
        if not 1 <= accept.max_block_size <= self.max_block_size:
            raise BdxError(StatusCode.BAD_MESSAGE_CONTENTS,
                           f"block size {accept.max_block_size} over our {self.max_block_size}")
        if (accept.start_offset or 0) not in (0, self.start_offset):
            raise BdxError(StatusCode.START_OFFSET_NOT_SUPPORTED,
                           f"sender starts at {accept.start_offset}, we asked {self.start_offset}")
        self.accept = accept
        self.state = ReceiverState.AWAIT_BLOCK
        if mode is DriveMode.SENDER_DRIVE:
            return []
        return [self._query()]

    def _query(self) -> Send:
        counter = self._query_counter
        skip = self.skips.pop(counter, 0)
        if skip and self.length:  # the sender stops at the end; so does our count
            skip = min(skip, self.length - self.bytes_received - self.bytes_skipped)
        if skip:
            self.bytes_skipped += skip
            return Send(Opcode.BLOCK_QUERY_WITH_SKIP,
                        BlockQueryWithSkip(counter, skip).encode())
        return Send(Opcode.BLOCK_QUERY, CounterMessage(counter).encode())

    def _on_block(self, block: DataBlock, eof: bool) -> list[Send]:
        accept = self.accept
        assert accept is not None
        if block.counter != self._query_counter:
            raise BdxError(StatusCode.BAD_BLOCK_COUNTER,
                           f"block {block.counter}, expected {self._query_counter}")
        if len(block.data) > accept.max_block_size or (not eof and not block.data):
            raise BdxError(StatusCode.BAD_MESSAGE_CONTENTS,
                           f"block of {len(block.data)} bytes (block size "
                           f"{accept.max_block_size})")
        total = self.bytes_received + self.bytes_skipped + len(block.data)
        if accept.length and total > accept.length:
            raise BdxError(StatusCode.LENGTH_TOO_LARGE,
                           f"{total} bytes received, {accept.length} announced")
        if eof and accept.length and total != accept.length:
            raise BdxError(StatusCode.LENGTH_TOO_SHORT,
                           f"BlockEOF after {total} of {accept.length} bytes")
        self.sink.write(block.data)
        self.bytes_received += len(block.data)
        self.blocks += 1
        self._query_counter = (block.counter + 1) % _COUNTER_MOD
        if eof:
            self.state = ReceiverState.DONE
            return [Send(Opcode.BLOCK_ACK_EOF, CounterMessage(block.counter).encode())]
        if accept.mode is DriveMode.SENDER_DRIVE:
            return [Send(Opcode.BLOCK_ACK, CounterMessage(block.counter).encode())]
        return [self._query()]
