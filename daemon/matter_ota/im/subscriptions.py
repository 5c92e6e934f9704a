"""Sending reports over exchanges, and subscriptions with their timers (8.4, 8.5).

:class:`ReportSender` sends a sequence of ReportData payloads on one exchange: it waits for the
client's StatusResponse after each chunk that does not suppress one (8.4.3.1). A read ends
with SuppressResponse; a subscription's priming report ends with the client's StatusResponse,
after which the server answers SubscribeResponse (8.5.3).

:class:`Subscriptions` is a sans-IO timer source (:meth:`matter_ota.node.Node.add_timer_source`):
after priming, each subscription reports changes no sooner than ``min_interval`` after its
previous report and sends an empty keep-alive report when ``max_interval`` passed without one
(8.5.1). A report the client does not answer with SUCCESS, or whose exchange fails, ends the
subscription.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from matter_ota.im.acl import Subject
from matter_ota.im.messages import (
    AttributePathIB,
    DataVersionFilterIB,
    EventPathIB,
    IMError,
    Opcode,
    Status,
    StatusResponse,
    status_name,
)
from matter_ota.im.reporting import Reader, Report, chunk_reports, read_attributes
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.session import SecureSession
from matter_ota.messaging.status import Protocol

log = logging.getLogger("matter_ota.im")

#: How long we wait for a client's StatusResponse to a report chunk (connectedhomeip waits
#: kImMessageTimeout, 30 s, for IM responses).
STATUS_RESPONSE_TIMEOUT = 30.0
#: The subscription table's size. 8.5.1: a publisher supports at least 3 subscriptions per
#: fabric; when full, the fabric holding the most gives up its oldest (fairness, as
#: connectedhomeip's eviction does), unless it holds no more than that minimum.
MAX_SUBSCRIPTIONS = 96
MIN_PER_FABRIC = 3

Done = Callable[[Exchange, bool], None]


def send_status(exchange: Exchange, status: Status) -> None:
    """A StatusResponse on ``exchange`` (IM protocol, reliable)."""
    exchange.send(Protocol.INTERACTION_MODEL, Opcode.STATUS_RESPONSE,
                  StatusResponse(status=status).encode())


def received_status(message: Message) -> int:
    """The status of a StatusResponse, or INVALID_ACTION for anything else."""
    if message.protocol_id != Protocol.INTERACTION_MODEL \
            or message.opcode != Opcode.STATUS_RESPONSE:
        return Status.INVALID_ACTION
    try:
        return StatusResponse.decode(message.payload).status
    except IMError:
        return Status.INVALID_ACTION


class ReportSender(ExchangeDelegate):
    """Sends ReportData chunks on one exchange, stepping on the client's StatusResponses.

    ``on_done(exchange, ok)`` runs once: after the last chunk (if it suppresses a response),
    after the client's SUCCESS to the last chunk, or with ``ok=False`` on any failure. The
    exchange stays open for ``on_done`` to answer on when the last chunk expected a status.
    """

    def __init__(self, payloads: list[bytes], *, final_suppresses: bool,
                 on_done: Done | None = None) -> None:
        self.payloads = payloads
        self.final_suppresses = final_suppresses
        self.on_done = on_done
        self.sent = 0

    def start(self, exchange: Exchange) -> None:
        """Send the first chunk."""
        self._send_next(exchange)

    def _send_next(self, exchange: Exchange) -> None:
        payload = self.payloads[self.sent]
        self.sent += 1
        exchange.send(Protocol.INTERACTION_MODEL, Opcode.REPORT_DATA, payload)
        if self.sent == len(self.payloads) and self.final_suppresses:
            exchange.delegate = None
            exchange.close()
            self._finish(exchange, True)
            return
        exchange.delegate = self
        exchange.set_response_timeout(STATUS_RESPONSE_TIMEOUT)

    def on_message(self, exchange: Exchange, message: Message) -> None:
        status = received_status(message)
        if status != Status.SUCCESS:
            log.info("event=report_refused exchange=%d status=%s", exchange.exchange_id,
                     status_name(status))
            exchange.delegate = None
            exchange.close()
            self._finish(exchange, False)
            return
        if self.sent < len(self.payloads):
            self._send_next(exchange)
            return
        exchange.delegate = None
        self._finish(exchange, True)
        exchange.close()

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        log.info("event=report_failed exchange=%d reason=%s", exchange.exchange_id, reason.value)
        self._finish(exchange, False)

    def _finish(self, exchange: Exchange, ok: bool) -> None:
        done, self.on_done = self.on_done, None
        if done is not None:
            done(exchange, ok)


ChangeKey = tuple[int, int, "int | None"]


@dataclass(eq=False)
class Subscription:
    """One subscription's request and reporting state."""

    id: int
    session: SecureSession
    subject: Subject
    attribute_paths: list[AttributePathIB]
    event_paths: list[EventPathIB]
    filters: list[DataVersionFilterIB]
    fabric_filtered: bool
    min_interval: int
    max_interval: int
    active: bool = False  # priming finished
    in_flight: bool = False
    last_report: float = 0.0
    dirty: set[ChangeKey] = field(default_factory=set)

    def due(self) -> float | None:
        """When the next report is due, or None while none can be sent."""
        if not self.active or self.in_flight:
            return None
        if self.dirty:
            return self.last_report + self.min_interval  # min <= max: always the earlier
        return self.last_report + self.max_interval

    def watches(self, endpoint: int, cluster: int, attribute: int | None) -> bool:
        return any((p.endpoint is None or p.endpoint == endpoint)
                   and (p.cluster is None or p.cluster == cluster)
                   and (p.attribute is None or attribute is None or p.attribute == attribute)
                   for p in self.attribute_paths)

    def is_dirty(self, report: Report) -> bool:
        if report.path is None:
            return False
        ep, cl, attr = report.path
        return (ep, cl, None) in self.dirty or (ep, cl, attr) in self.dirty


class Subscriptions:
    """All subscriptions of the server: creation, change tracking and the report timers."""

    def __init__(self, reader_for: Callable[[Subscription, float], Reader],
                 session_alive: Callable[[SecureSession], bool],
                 new_exchange: Callable[[SecureSession, float], Exchange],
                 randbits: Callable[[int], int] = secrets.randbits) -> None:
        self._reader_for = reader_for
        self._session_alive = session_alive
        self._new_exchange = new_exchange
        self._randbits = randbits
        self.active: dict[int, Subscription] = {}

    def __len__(self) -> int:
        return len(self.active)

    def create(self, **fields: Any) -> Subscription:
        """A new (priming) subscription with a fresh id; OverflowError if the table is full
        and no fabric holds more than its guaranteed share."""
        if len(self.active) >= MAX_SUBSCRIPTIONS:
            self._make_room()
        sub_id = self._randbits(32)
        while sub_id in self.active:
            sub_id = self._randbits(32)
        sub = Subscription(id=sub_id, **fields)
        self.active[sub_id] = sub
        return sub

    def _make_room(self) -> None:
        by_fabric: dict[int, list[Subscription]] = {}
        for sub in self.active.values():  # insertion order: oldest first
            by_fabric.setdefault(sub.subject.fabric_index, []).append(sub)
        largest = max(by_fabric.values(), key=len)
        if len(largest) <= MIN_PER_FABRIC:
            raise OverflowError("subscription table full")
        self.drop(largest[0], "evicted")

    def drop(self, sub: Subscription, reason: str) -> None:
        if self.active.pop(sub.id, None) is not None:
            log.info("event=subscription_ended id=0x%08X node=0x%016X reason=%s", sub.id,
                     sub.subject.node_id, reason)

    def drop_for(self, subject: Subject, session: SecureSession, keep: Subscription) -> None:
        """KeepSubscriptions=false (8.5.3): end the subscriber's other subscriptions."""
        for sub in list(self.active.values()):
            if sub is keep:
                continue
            same = (sub.session is session if subject.node_id == 0 else
                    sub.subject.node_id == subject.node_id
                    and sub.subject.fabric_index == subject.fabric_index)
            if same:
                self.drop(sub, "replaced")

    def primed(self, sub: Subscription, now: float) -> None:
        """Priming is done: the reporting timers start. Changes made while the priming
        chunks were in flight stay dirty, as the chunks hold the values read at the start."""
        sub.active = True
        sub.last_report = now

    def changed(self, endpoint: int, cluster: int, attribute: int | None) -> None:
        """A data model change: mark the subscriptions that watch it."""
        for sub in self.active.values():
            if sub.watches(endpoint, cluster, attribute):
                sub.dirty.add((endpoint, cluster, attribute))

    def next_deadline(self) -> float | None:
        return min((d for d in (s.due() for s in self.active.values()) if d is not None),
                   default=None)

    def handle_timer(self, now: float) -> None:
        for sub in list(self.active.values()):
            due = sub.due()
            if due is None or due > now:
                continue
            if not self._session_alive(sub.session):
                self.drop(sub, "session_closed")
                continue
            self._report(sub, now)

    def _report(self, sub: Subscription, now: float) -> None:
        reports: list[Report] = []
        if sub.dirty:
            reader = self._reader_for(sub, now)
            reports = [r for r in read_attributes(reader, sub.attribute_paths, sub.filters)
                       if sub.is_dirty(r)]
        sub.dirty.clear()
        payloads = chunk_reports(reports, subscription_id=sub.id, suppress_final=False)
        sub.in_flight = True
        sub.last_report = now
        exchange = self._new_exchange(sub.session, now)

        def done(_exchange: Exchange, ok: bool) -> None:
            sub.in_flight = False
            if not ok:
                self.drop(sub, "report_failed")

        log.debug("event=subscription_report id=0x%08X reports=%d chunks=%d", sub.id,
                  len(reports), len(payloads))
        ReportSender(payloads, final_suppresses=False, on_done=done).start(exchange)
