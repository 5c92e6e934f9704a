"""The provider's open BDX downloads: limits, one transfer per device, idle timeouts, events.

:class:`TransferTable` turns a ReceiveInit into a :class:`~.sender.SenderTransfer` (or a
refusal: RESPONDER_BUSY, FILE_DESIGNATOR_UNKNOWN, ...), feeds it the receiver's messages, ends
it on failure and queues the :data:`~.sender.TransferEvent` s for the runtime, the store and the
metrics. Sans-IO like the sender: time comes in as ``now``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Hashable

from matter_ota.bdx.messages import BdxError, ReceiveAccept, StatusCode, TransferInit
from matter_ota.bdx.sender import (
    DeviceLookup,
    FailReason,
    Lookup,
    Send,
    SenderConfig,
    SenderTransfer,
    TransferEvent,
    TransferStarted,
    negotiate,
)

log = logging.getLogger("matter_ota.bdx")


class TransferTable:
    """The provider's open downloads: negotiation, limits, idle timeouts and events.

    At most :attr:`SenderConfig.max_transfers` at once (more are refused with RESPONDER_BUSY)
    and one per device: a device that starts a new transfer (it rebooted, or gave up on the
    old one) replaces its old transfer, which fails as SUPERSEDED.
    """

    def __init__(self, lookup: Lookup | None, config: SenderConfig | None = None, *,
                 device_lookup: DeviceLookup | None = None) -> None:
        if (lookup is None) == (device_lookup is None):
            raise ValueError("give exactly one of lookup and device_lookup")
        self.lookup = lookup
        self.device_lookup = device_lookup
        self.config = config or SenderConfig()
        self._by_device: dict[Hashable, SenderTransfer] = {}
        self._events: deque[TransferEvent] = deque()
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._by_device)

    def transfers(self) -> list[SenderTransfer]:
        return list(self._by_device.values())

    def get(self, device: Hashable) -> SenderTransfer | None:
        return self._by_device.get(device)

    def next_event(self) -> TransferEvent | None:
        """The oldest undelivered event, or None."""
        return self._events.popleft() if self._events else None

    def open(
        self, device: Hashable, init_payload: bytes, now: float
    ) -> tuple[SenderTransfer, ReceiveAccept, SenderTransfer | None]:
        """Start a transfer for a ReceiveInit from ``device``.

        Returns the transfer, the ReceiveAccept to send (then :meth:`SenderTransfer.start`)
        and the transfer it superseded, if any. Raises :class:`BdxError` to refuse.
        """
        init = TransferInit.decode(init_payload)
        old = self._by_device.get(device)
        if old is None and len(self._by_device) >= self.config.max_transfers:
            raise BdxError(
                StatusCode.RESPONDER_BUSY,
                f"{len(self._by_device)} transfers running (limit {self.config.max_transfers})",
            )
        try:
            designator = init.file_designator.decode("utf-8")
        except UnicodeDecodeError:
            raise BdxError(
                StatusCode.FILE_DESIGNATOR_UNKNOWN, "file designator is not UTF-8"
            ) from None
        if self.device_lookup is not None:
            image = self.device_lookup(device, designator)
        else:
            assert self.lookup is not None
            image = self.lookup(designator)
        if image is None:
            raise BdxError(StatusCode.FILE_DESIGNATOR_UNKNOWN, f"no released image {designator!r}")
        try:
            accept = negotiate(init, image.size, self.config)
        except BdxError:
            image.close()
            raise
        if old is not None:
            self._drop(old)
            old.fail(FailReason.SUPERSEDED, "the device started a new transfer", now)
        transfer = SenderTransfer(
            self._next_id, device, designator, image, accept, self.config, now, self._emit
        )
        self._next_id += 1
        self._by_device[device] = transfer
        log.info(
            "event=bdx_started transfer=%d device=%s designator=%s mode=%s offset=%d length=%d "
            "block=%d",
            transfer.transfer_id, device, designator, accept.mode.name, transfer.start_offset,
            transfer.length, transfer.block_size,
        )
        self._emit(TransferStarted(
            transfer.transfer_id, device, designator, accept.mode, transfer.start_offset,
            transfer.length, transfer.block_size,
        ))
        return transfer, accept, old

    def receive(self, transfer: SenderTransfer, opcode: int, payload: bytes,
                now: float) -> list[Send]:
        """Feed a message to ``transfer``; a BdxError fails it (and propagates)."""
        try:
            out = transfer.receive(opcode, payload, now)
        except BdxError as err:
            reason = (
                FailReason.IO_ERROR
                if err.code is StatusCode.TRANSFER_FAILED_UNKNOWN_ERROR
                else FailReason.PROTOCOL_ERROR
            )
            self.fail(transfer, reason, err.reason, now, err.code)
            raise
        if transfer.finished:
            self._drop(transfer)
        return out

    def start(self, transfer: SenderTransfer, now: float) -> list[Send]:
        """The first messages after the accept (sender drive's first block)."""
        try:
            return transfer.start(now)
        except BdxError as err:
            self.fail(transfer, FailReason.IO_ERROR, err.reason, now, err.code)
            raise

    def fail(self, transfer: SenderTransfer, reason: FailReason, detail: str, now: float,
             status: StatusCode | None = None) -> None:
        """End ``transfer`` unsuccessfully (no-op if it already ended)."""
        transfer.fail(reason, detail, now, status)
        self._drop(transfer)

    def next_deadline(self) -> float | None:
        """The earliest idle deadline of any transfer."""
        deadlines = [d for t in self._by_device.values() if (d := t.deadline()) is not None]
        return min(deadlines) if deadlines else None

    def expire(self, now: float) -> list[SenderTransfer]:
        """Fail the transfers idle for longer than the idle timeout; returns them."""
        expired = [t for t in self._by_device.values()
                   if (d := t.deadline()) is not None and now >= d]
        for transfer in expired:
            self.fail(transfer, FailReason.IDLE_TIMEOUT,
                      f"no message for {self.config.idle_timeout:g} s", now)
        return expired

    def _drop(self, transfer: SenderTransfer) -> None:
        if self._by_device.get(transfer.device) is transfer:
            del self._by_device[transfer.device]

    def _emit(self, event: TransferEvent) -> None:
        self._events.append(event)
