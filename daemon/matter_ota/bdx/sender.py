"""The provider's side of a BDX download: a sans-IO sender answering a ReceiveInit (11.22).

A :class:`SenderTransfer` is created from a ReceiveInit by
:meth:`~.transfers.TransferTable.open`, which looks the file designator up, applies the limits
and calls :func:`negotiate` (drive mode, block size, start offset, length). After that every
received BDX message goes to :meth:`SenderTransfer.receive`, which returns the messages to
send. Time comes in as ``now``; nothing here touches a socket or a clock. The image is read one
block at a time through an :class:`~.image_source.ImageSource`.

The state machine is a table (h11 style): :data:`TRANSITIONS` lists, for every (state, input),
the states the transfer may move to. An input missing from the table raises
:class:`~.messages.BdxError` ``UNEXPECTED_MESSAGE`` and leaves the state unchanged; the owner
then aborts the transfer and the node sends the StatusReport.

    receiver drive   ReceiveInit → ReceiveAccept; BlockQuery(n) → Block(n) … BlockEOF(k);
                     BlockAckEOF(k) → done. BlockQueryWithSkip moves ahead first; a BlockAck
                     between blocks only resets the idle timer.
    sender drive     ReceiveInit → ReceiveAccept + Block(0); BlockAck(n) → Block(n+1) …
                     BlockEOF(k); BlockAckEOF(k) → done. The accept and the first block
                     leave back to back (two reliable messages in flight on the exchange;
                     receivers acknowledge each). connectedhomeip and matter.js requestors
                     use receiver drive, which we prefer.

Block counters start at 0 and wrap at 2^32 (11.22.6.1).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from matter_ota.bdx.image_source import ImageSource
from matter_ota.bdx.messages import (
    BDX_VERSION,
    BLOCK_OVERHEAD,
    BdxError,
    BlockQueryWithSkip,
    CounterMessage,
    DriveMode,
    Opcode,
    ReceiveAccept,
    StatusCode,
    TransferInit,
    encode_block,
)
from matter_ota.messaging.header import MAX_SECURE_PAYLOAD

log = logging.getLogger("matter_ota.bdx")

#: The largest block whose Block message fits one datagram on a secure session.
MAX_BLOCK_SIZE = MAX_SECURE_PAYLOAD - BLOCK_OVERHEAD
#: TC-SU-3.x: a provider keeps an idle BDX transfer for at least 5 minutes
#: (connectedhomeip BdxOtaSender: kBdxTimeout = 5 min).
DEFAULT_IDLE_TIMEOUT = 300.0
_COUNTER_MOD = 1 << 32

Lookup = Callable[[str], ImageSource | None]
"""Maps a file designator to an open released image, or None (FILE_DESIGNATOR_UNKNOWN)."""


@dataclass(frozen=True, slots=True)
class SenderConfig:
    """Limits and preferences of the provider's BDX sender."""

    max_block_size: int = MAX_BLOCK_SIZE
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    #: Drive modes we accept, in order of preference (receiver drive paces the device).
    modes: tuple[DriveMode, ...] = (DriveMode.RECEIVER_DRIVE, DriveMode.SENDER_DRIVE)
    max_transfers: int = 32
    #: Bytes between two TransferProgress events of one transfer.
    progress_step: int = 1 << 20

    def __post_init__(self) -> None:
        if not 1 <= self.max_block_size <= MAX_BLOCK_SIZE:
            raise ValueError(f"max_block_size must be 1..{MAX_BLOCK_SIZE}")
        if self.idle_timeout <= 0 or self.max_transfers < 1 or self.progress_step < 1:
            raise ValueError("idle_timeout, max_transfers and progress_step must be positive")
        if not self.modes or DriveMode.ASYNC in self.modes:
            raise ValueError("modes: sender and/or receiver drive (async is not supported)")


class State(enum.Enum):
    """Where a sending transfer is."""

    AWAIT_QUERY = "await_query"  # receiver drive: the next BlockQuery
    AWAIT_ACK = "await_ack"  # sender drive: the BlockAck of the block we sent
    AWAIT_EOF_ACK = "await_eof_ack"  # BlockEOF sent, waiting for BlockAckEOF
    DONE = "done"
    FAILED = "failed"


class Input(enum.Enum):
    """What can happen to a transfer."""

    BLOCK_QUERY = Opcode.BLOCK_QUERY.value
    BLOCK_QUERY_WITH_SKIP = Opcode.BLOCK_QUERY_WITH_SKIP.value
    BLOCK_ACK = Opcode.BLOCK_ACK.value
    BLOCK_ACK_EOF = Opcode.BLOCK_ACK_EOF.value
    FAIL = "fail"  # peer StatusReport, idle timeout, MRP give-up, session gone, our error


_Q, _A, _E, _D, _F = (
    State.AWAIT_QUERY, State.AWAIT_ACK, State.AWAIT_EOF_ACK, State.DONE, State.FAILED,
)

# (state, input) -> states it may lead to. Anything missing is illegal.
TRANSITIONS: dict[tuple[State, Input], frozenset[State]] = {
    (_Q, Input.BLOCK_QUERY): frozenset({_Q, _E}),
    (_Q, Input.BLOCK_QUERY_WITH_SKIP): frozenset({_Q, _E}),
    (_Q, Input.BLOCK_ACK): frozenset({_Q}),
    (_Q, Input.FAIL): frozenset({_F}),
    (_A, Input.BLOCK_ACK): frozenset({_A, _E}),
    (_A, Input.FAIL): frozenset({_F}),
    (_E, Input.BLOCK_ACK_EOF): frozenset({_D}),
    (_E, Input.FAIL): frozenset({_F}),
}


class FailReason(enum.Enum):
    """Why a transfer ended without BlockAckEOF (for the store and metrics)."""

    PEER_STATUS = "peer_status"  # the device sent a StatusReport
    PROTOCOL_ERROR = "protocol_error"  # we sent a StatusReport (bad counter, unexpected, ...)
    IDLE_TIMEOUT = "idle_timeout"
    ACK_TIMEOUT = "ack_timeout"  # MRP gave up on one of our messages
    SESSION_CLOSED = "session_closed"
    SUPERSEDED = "superseded"  # the device started a new transfer
    IO_ERROR = "io_error"  # reading the image failed
    SHUTDOWN = "shutdown"

    @property
    def store_state(self) -> str:
        """How the state store ends such a transfer (``store.TRANSFER_ENDS``): ``aborted``
        when nobody failed (the device started over, the provider stopped), else ``failed``."""
        return "aborted" if self in (FailReason.SUPERSEDED, FailReason.SHUTDOWN) else "failed"


@dataclass(frozen=True, slots=True)
class TransferStarted:
    transfer_id: int
    device: Hashable
    designator: str
    mode: DriveMode
    start_offset: int
    length: int
    block_size: int


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """``position`` is the image offset reached: where a resumed transfer would start."""

    transfer_id: int
    device: Hashable
    bytes_sent: int
    length: int
    position: int


@dataclass(frozen=True, slots=True)
class TransferCompleted:
    transfer_id: int
    device: Hashable
    designator: str
    bytes_sent: int
    seconds: float


@dataclass(frozen=True, slots=True)
class TransferFailed:
    transfer_id: int
    device: Hashable
    designator: str
    reason: FailReason
    detail: str
    bytes_sent: int
    status: StatusCode | None = None  # the BDX status sent or received, if any


TransferEvent = TransferStarted | TransferProgress | TransferCompleted | TransferFailed


@dataclass(frozen=True, slots=True)
class Send:
    """A BDX message to send on the transfer's exchange."""

    opcode: Opcode
    payload: bytes


def negotiate(init: TransferInit, size: int, config: SenderConfig) -> ReceiveAccept:
    """Our ReceiveAccept for ``init`` on an image of ``size`` bytes; BdxError if impossible."""
    mode = next((m for m in config.modes if m in init.modes), None)
    if mode is None:
        raise BdxError(
            StatusCode.TRANSFER_METHOD_NOT_SUPPORTED,
            f"proposed modes 0x{int(init.modes):02x}, we serve "
            + "/".join(str(m.name) for m in config.modes),
        )
    if init.max_block_size == 0:
        raise BdxError(StatusCode.BAD_MESSAGE_CONTENTS, "max block size 0")
    if init.start_offset > size:
        raise BdxError(
            StatusCode.START_OFFSET_NOT_SUPPORTED,
            f"start offset {init.start_offset} beyond the image's {size} bytes",
        )
    remaining = size - init.start_offset
    if init.max_length > remaining:
        raise BdxError(
            StatusCode.LENGTH_TOO_LARGE,
            f"length {init.max_length} from offset {init.start_offset} exceeds the image "
            f"({size} bytes)",
        )
    return ReceiveAccept(
        mode=mode,
        max_block_size=min(init.max_block_size, config.max_block_size),
        length=init.max_length or remaining,
        # connectedhomeip echoes a non-zero offset; the spec layout has none (see messages.py)
        start_offset=init.start_offset or None,
        # 11.22.5.1.1: the version used is the lower of the two; we only speak version 0
        version=min(init.version, BDX_VERSION),
    )


class SenderTransfer:
    """One download the provider is serving. Create it with :meth:`TransferTable.open`."""

    def __init__(
        self,
        transfer_id: int,
        device: Hashable,
        designator: str,
        image: ImageSource,
        accept: ReceiveAccept,
        config: SenderConfig,
        now: float,
        emit: Callable[[TransferEvent], None],
    ) -> None:
        self.transfer_id = transfer_id
        self.device = device
        self.designator = designator
        self.mode = accept.mode
        self.block_size = accept.max_block_size
        self.start_offset = accept.start_offset or 0
        self.length = accept.length
        self.end = self.start_offset + self.length
        self.position = self.start_offset
        self.bytes_sent = 0
        self.config = config
        self.started_at = now
        self.last_activity = now
        self.state = State.AWAIT_QUERY if self.mode is DriveMode.RECEIVER_DRIVE else State.AWAIT_ACK
        self.failure: TransferFailed | None = None
        self._image: ImageSource | None = image
        self._emit = emit
        self._next_counter = 0  # the counter of the next block we send
        self._last_counter: int | None = None  # the counter of the last block sent
        self._next_progress = config.progress_step

    # -- inputs ------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.state in (State.DONE, State.FAILED)

    def start(self, now: float) -> list[Send]:
        """The messages after ReceiveAccept: the first block in sender drive, else nothing."""
        if self.mode is DriveMode.SENDER_DRIVE and self._last_counter is None:
            return [self._send_block(now)]
        return []

    def receive(self, opcode: int, payload: bytes, now: float) -> list[Send]:
        """Handle one BDX message from the receiver; returns what to send back.

        Raises :class:`BdxError` for an illegal, malformed or out-of-order message; the state
        is then unchanged and the owner calls :meth:`fail`.
        """
        try:
            what = Input(opcode)
        except ValueError:
            raise BdxError(
                StatusCode.UNEXPECTED_MESSAGE, f"BDX opcode 0x{opcode:02x} on a download"
            ) from None
        allowed = TRANSITIONS.get((self.state, what))
        if allowed is None:
            raise BdxError(
                StatusCode.UNEXPECTED_MESSAGE, f"{what.name} while {self.state.value}"
            )
        before = self.state
        out = self._HANDLERS[what](self, payload, now)
        if self.state not in allowed:  # pragma: no cover - a bug in a handler
            raise AssertionError(f"{before} --{what}--> {self.state} is not in TRANSITIONS")
        self.last_activity = now
        return out

    def fail(
        self, reason: FailReason, detail: str, now: float, status: StatusCode | None = None
    ) -> bool:
        """End the transfer unsuccessfully; False if it had already ended."""
        if (self.state, Input.FAIL) not in TRANSITIONS:
            return False
        self.state = State.FAILED
        self.failure = TransferFailed(
            self.transfer_id, self.device, self.designator, reason, detail, self.bytes_sent, status
        )
        self._close_image()
        log.info(
            "event=bdx_failed transfer=%d device=%s reason=%s status=%s sent=%d/%d detail=%s",
            self.transfer_id, self.device, reason.value, status.name if status else "-",
            self.bytes_sent, self.length, detail,
        )
        self._emit(self.failure)
        return True

    def deadline(self) -> float | None:
        """When the transfer times out for lack of messages from the receiver."""
        return None if self.finished else self.last_activity + self.config.idle_timeout

    # -- handlers ----------------------------------------------------------------------------

    def _check_query(self, counter: int) -> None:
        if counter != self._next_counter:
            raise BdxError(
                StatusCode.BAD_BLOCK_COUNTER,
                f"BlockQuery for block {counter}, expected {self._next_counter}",
            )

    def _on_query(self, payload: bytes, now: float) -> list[Send]:
        query = CounterMessage.decode(payload)
        self._check_query(query.counter)
        return [self._send_block(now)]

    def _on_query_with_skip(self, payload: bytes, now: float) -> list[Send]:
        query = BlockQueryWithSkip.decode(payload)
        self._check_query(query.counter)
        # Past the end is not an error: the next block is then an empty BlockEOF
        # (connectedhomeip clamps the same way).
        return [self._send_block(now, min(self.end, self.position + query.bytes_to_skip))]

    def _check_ack(self, counter: int, what: str) -> None:
        if self._last_counter is None or counter != self._last_counter:
            raise BdxError(
                StatusCode.BAD_BLOCK_COUNTER,
                f"{what} for block {counter}, last block sent is {self._last_counter}",
            )

    def _on_ack(self, payload: bytes, now: float) -> list[Send]:
        ack = CounterMessage.decode(payload)
        self._check_ack(ack.counter, "BlockAck")
        if self.mode is DriveMode.SENDER_DRIVE:
            return [self._send_block(now)]
        return []  # receiver drive: an ack only says "still here"; the query follows

    def _on_ack_eof(self, payload: bytes, now: float) -> list[Send]:
        ack = CounterMessage.decode(payload)
        self._check_ack(ack.counter, "BlockAckEOF")
        self.state = State.DONE
        self._close_image()
        log.info(
            "event=bdx_completed transfer=%d device=%s designator=%s bytes=%d seconds=%.3f",
            self.transfer_id, self.device, self.designator, self.bytes_sent,
            now - self.started_at,
        )
        self._emit(TransferCompleted(
            self.transfer_id, self.device, self.designator, self.bytes_sent, now - self.started_at
        ))
        return []

    _HANDLERS: dict[Input, Callable[[SenderTransfer, bytes, float], list[Send]]] = {
        Input.BLOCK_QUERY: _on_query,
        Input.BLOCK_QUERY_WITH_SKIP: _on_query_with_skip,
        Input.BLOCK_ACK: _on_ack,
        Input.BLOCK_ACK_EOF: _on_ack_eof,
    }

    # -- blocks ------------------------------------------------------------------------------

    def _send_block(self, now: float, position: int | None = None) -> Send:
        """Read and send the block at ``position`` (default: where the last one ended)."""
        start = self.position if position is None else position
        want = min(self.block_size, self.end - start)
        image = self._image
        if image is None:  # pragma: no cover - only finished transfers lose their image
            raise AssertionError("block requested after the transfer ended")
        try:
            data = image.read_at(start, want)
        except OSError as exc:
            raise BdxError(
                StatusCode.TRANSFER_FAILED_UNKNOWN_ERROR, f"reading the image: {exc}"
            ) from exc
        if len(data) != want:
            raise BdxError(
                StatusCode.TRANSFER_FAILED_UNKNOWN_ERROR,
                f"image read returned {len(data)} of {want} bytes at {start}",
            )
        counter = self._next_counter
        self.position = start + want
        self.bytes_sent += want
        self._last_counter = counter
        self._next_counter = (counter + 1) % _COUNTER_MOD
        eof = self.position >= self.end
        if eof:
            self.state = State.AWAIT_EOF_ACK
        if self.bytes_sent >= self._next_progress or eof:
            self._next_progress = self.bytes_sent + self.config.progress_step
            self._emit(TransferProgress(self.transfer_id, self.device, self.bytes_sent,
                                        self.length, self.position))
        return Send(Opcode.BLOCK_EOF if eof else Opcode.BLOCK, encode_block(counter, data))

    def _close_image(self) -> None:
        if self._image is not None:
            image, self._image = self._image, None
            image.close()

    def __repr__(self) -> str:
        return (
            f"<SenderTransfer {self.transfer_id} {self.designator!r} {self.state.value} "
            f"{self.bytes_sent}/{self.length}>"
        )
