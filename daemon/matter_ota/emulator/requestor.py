"""An emulated OTA Requestor (Matter Core 11.20.7) built from our own stack: CASE initiator,
IM invoke client, BDX receiver. Sans-IO like the rest: :meth:`Requestor.poll` takes ``now``,
reads its node's events and moves the update one step; :meth:`Requestor.next_deadline` says
when it wants to be polled again (a Busy or AwaitNextAction delay).

The walk, as an SDK requestor does it::

    connect (CASE) -> QueryImage -> UpdateAvailable: check the ImageURI, BDX download
                                 -> Busy: wait DelayedActionTime, query again
                                 -> NotAvailable: done
    download complete -> ApplyUpdateRequest -> Proceed: "reboot" on the new version,
                                               reconnect (CASE resumption), NotifyUpdateApplied
                                            -> AwaitNextAction: wait, ask again
                                            -> Discontinue: drop the image, done

:class:`Behaviour` makes a requestor misbehave on purpose (tests, fleet failure runs): kill
the download after some bytes, boot back into the old version after Proceed, never notify.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from matter_ota.bdx.client import Download, DownloadCompleted, DownloadFailed, start_download
from matter_ota.bdx.receiver import ReceiverTransfer
from matter_ota.bdx.sender import MAX_BLOCK_SIZE
from matter_ota.clusters.ota_provider import (
    ApplyUpdateAction,
    ApplyUpdateRequest,
    ApplyUpdateResponse,
    NotifyUpdateApplied,
    OtaProviderCluster,
    QueryImage,
    QueryImageResponse,
    QueryStatus,
)
from matter_ota.emulator.invoke import Invocation, invoke
from matter_ota.fabrics import FabricInfo
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.session import Address, SecureSession
from matter_ota.node import Node
from matter_ota.provider.uri import ImageUriError, check_image_uri
from matter_ota.secure_channel.case_server import CaseClient, CaseConnection
from matter_ota.tlv import Struct, TLVError

QUERY_IMAGE, APPLY_UPDATE, NOTIFY_APPLIED = 0x00, 0x02, 0x04
BDX_SYNCHRONOUS = 0

_Response = TypeVar("_Response", bound=Struct)


class Stage(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    QUERYING = "querying"
    WAITING = "waiting"  # Busy / AwaitNextAction / retry delay
    DOWNLOADING = "downloading"
    APPLYING = "applying"
    NOTIFYING = "notifying"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Identity:
    """What the requestor reports in QueryImage."""

    vendor_id: int = 0xFFF1
    product_id: int = 0x8001
    software_version: int = 1
    hardware_version: int | None = None
    location: str | None = None
    can_consent: bool = False
    protocols: tuple[int, ...] = (BDX_SYNCHRONOUS,)


@dataclass(frozen=True)
class Behaviour:
    """Deliberate misbehaviour (all off: a well-behaved requestor)."""

    kill_after_bytes: int | None = None  # abort the first download after this many bytes
    stall_after_bytes: int | None = None  # stop answering the provider (it must time out)
    boots_old_version: bool = False  # after Proceed it comes back on its old version
    never_notifies: bool = False  # after Proceed it never sends NotifyUpdateApplied
    max_block_size: int | None = None
    retry_delay: float = 60.0  # after a failed download, query again after this long
    max_queries: int = 20  # give up after this many QueryImage in one walk
    case_attempts: int = 3  # CASE attempts failing other than BUSY before the walk fails


class _Mute(ExchangeDelegate):
    """Swallows the provider's blocks: a requestor that hung mid-download."""

    def on_message(self, exchange: Exchange, message: Message) -> None:
        return None

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        return None


class _Hash:
    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.sha.update(data)
        self.size += len(data)
        return len(data)


@dataclass
class Requestor:
    """One emulated requestor on its own node; see the module docstring."""

    node: Node
    case: CaseClient
    fabric: FabricInfo
    provider_node_id: int
    provider_addr: Address
    identity: Identity = Identity()
    behaviour: Behaviour = Behaviour()
    on_log: Callable[[str], None] | None = None

    stage: Stage = Stage.IDLE
    version: int = field(init=False)
    session: SecureSession | None = None
    responses: list[QueryImageResponse] = field(default_factory=list)
    applies: list[ApplyUpdateResponse] = field(default_factory=list)
    notified: list[int] = field(default_factory=list)
    downloads: int = 0
    image_sha256: bytes | None = None
    image_size: int = 0
    error: str | None = None
    result: str | None = None  # updated / not_available / discontinued / failed ...
    wait_until: float | None = None
    _connection: CaseConnection | None = None
    _invocation: Invocation | None = None
    _download: Download | None = None
    _sink: _Hash | None = None
    _token: bytes | None = None
    _offered: int | None = None
    _after_wait: Stage = Stage.QUERYING
    _killed: bool = False
    _notify_pending: bool = False
    _queries: int = 0
    _lost_sessions: int = 0
    _resume_with: Stage = Stage.QUERYING
    _case_retries: int = 0
    case_busy: int = 0  # CASE attempts the provider answered BUSY

    def __post_init__(self) -> None:
        self.version = self.identity.software_version

    @property
    def node_id(self) -> int:
        return self.fabric.node_id

    @property
    def finished(self) -> bool:
        return self.stage in (Stage.DONE, Stage.FAILED)

    def _log(self, text: str) -> None:
        if self.on_log is not None:
            self.on_log(f"requestor 0x{self.node_id:X}: {text}")

    # -- driving ------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin (or begin again after DONE / FAILED): connect, then query."""
        self.result = self.error = None
        self._queries = 0
        self._after_wait = Stage.QUERYING
        self._connect(now)

    def next_deadline(self) -> float | None:
        return self.wait_until if self.stage is Stage.WAITING else None

    def poll(self, now: float) -> None:
        """Take the node's events (a node of its own) and move on as far as it can."""
        while (event := self.node.next_event()) is not None:
            self._on_event(event, now)
        self.advance(now)

    def handle_event(self, event: object, now: float) -> None:
        """An event of a node shared with other requestors (each takes its own)."""
        self._on_event(event, now)
        self.advance(now)

    def advance(self, now: float) -> None:
        """Move on as far as the answers received allow."""
        while True:
            before = self.stage
            self._step(now)
            if self.stage is before:
                return

    def _step(self, now: float) -> None:
        stage = self.stage
        if stage is Stage.CONNECTING:
            conn = self._connection
            if conn is None or not conn.done:
                return  # the handshake ends by itself: session, error or timeout
            if conn.session is None:
                busy = conn.retry_after
                if busy is not None:  # 4.11.1.4: the responder asked us to come back later
                    # at least the wait asked, plus a share of it of our own, so that a fleet
                    # refused at once does not come back at once (as SDK devices spread)
                    self.case_busy += 1
                    share = (self.node_id * 0x9E3779B1 % 1000) / 1000
                    self._wait(now, max(busy, 0.5) * (1 + share), Stage.CONNECTING)
                    return
                if self._case_retries + 1 < self.behaviour.case_attempts:
                    # e.g. a resumption the responder lost: the next attempt is a full CASE
                    self._case_retries += 1
                    self._wait(now, 1.0, Stage.CONNECTING)
                    return
                self._fail(f"CASE failed: {conn.error}")
                return
            self.session = conn.session
            self._case_retries = 0
            step, self._resume_with = self._resume_with, Stage.QUERYING
            if self._notify_pending:
                self._notify(now)
            elif step is Stage.APPLYING:
                self._apply(now)
            else:
                self._query(now)
        elif stage is Stage.QUERYING:
            inv = self._invocation
            if inv is not None and inv.done:
                self._on_query_answer(inv, now)
        elif stage is Stage.WAITING:
            if self.wait_until is not None and now >= self.wait_until:
                self.wait_until = None
                if self._after_wait is Stage.APPLYING:
                    self._apply(now)
                elif self.session is None:
                    self._connect(now)
                else:
                    self._query(now)
        elif stage is Stage.DOWNLOADING:
            kill = self.behaviour.kill_after_bytes
            dl = self._download
            stall = self.behaviour.stall_after_bytes
            if (stall is not None and dl is not None and dl.exchange is not None
                    and dl.receiver.bytes_received >= stall
                    and not isinstance(dl.exchange.delegate, _Mute)):
                dl.exchange.delegate = _Mute()
                self._log(f"stalled the download at {dl.receiver.bytes_received} bytes")
            if (kill is not None and not self._killed and dl is not None
                    and dl.receiver.bytes_received >= kill):
                self._killed = True
                dl.abort(now)
                self._log(f"killed the download at {dl.receiver.bytes_received} bytes")
                self._retry(now, "download killed")
        elif stage is Stage.APPLYING:
            inv = self._invocation
            if inv is not None and inv.done:
                self._on_apply_answer(inv, now)
        elif stage is Stage.NOTIFYING:
            inv = self._invocation
            if inv is not None and inv.done:
                if not inv.ok:
                    if self._session_lost(inv, now, Stage.NOTIFYING):
                        return
                    self._fail(f"NotifyUpdateApplied: {inv.error}")
                    return
                self.notified.append(self.version)
                self._notify_pending = False
                self.stage, self.result = Stage.DONE, "updated"

    # -- steps ---------------------------------------------------------------------------------

    def _connect(self, now: float) -> None:
        self.stage = Stage.CONNECTING
        self.session = None
        self._connection = self.case.connect(self.fabric, self.provider_node_id,
                                             self.provider_addr, now)

    def _query(self, now: float) -> None:
        assert self.session is not None
        self._queries += 1
        if self._queries > self.behaviour.max_queries:
            self._fail(f"gave up after {self.behaviour.max_queries} queries")
            return
        ident = self.identity
        request = QueryImage(
            vendor_id=ident.vendor_id, product_id=ident.product_id,
            software_version=self.version, protocols_supported=list(ident.protocols),
            hardware_version=ident.hardware_version, location=ident.location,
            requestor_can_consent=ident.can_consent if ident.can_consent else None,
        )
        self.stage = Stage.QUERYING
        self._invocation = invoke(self.node, self.session, 0, OtaProviderCluster.ID,
                                  QUERY_IMAGE, request.to_value(), now)

    def _session_lost(self, inv: Invocation, now: float, step: Stage) -> bool:
        """No answer at all (the provider dropped our session, e.g. evicted it while we were
        idle): as a device's stack does, establish CASE again and repeat the step, twice."""
        no_answer = inv.status is None and inv.fields is None and (inv.error or "").startswith(
            "exchange ")
        if not no_answer or self._lost_sessions >= 2:
            return False
        self._lost_sessions += 1
        self._log(f"no answer ({inv.error}); connecting again")
        if self.session is not None:
            self.node.remove_session(self.session)
        self._resume_with = step
        self._connect(now)
        return True

    def _answer(
        self, inv: Invocation, now: float, step: Stage, command: str, schema: type[_Response]
    ) -> _Response | None:
        """The decoded response to ``command``; None when the session was lost (the step is
        repeated) or the answer is an error or malformed (the emulation failed)."""
        if self._session_lost(inv, now, step):
            return None
        if inv.error is not None or inv.fields is None:
            self._fail(f"{command}: {inv.error or 'no response fields'}")
            return None
        try:
            return schema.from_value(inv.fields)
        except TLVError as exc:
            self._fail(f"{schema.__name__}: {exc}")
            return None

    def _on_query_answer(self, inv: Invocation, now: float) -> None:
        answer = self._answer(inv, now, Stage.QUERYING, "QueryImage", QueryImageResponse)
        if answer is None:
            return
        self.responses.append(answer)
        status = answer.status
        if status == QueryStatus.BUSY:
            self._wait(now, float(answer.delayed_action_time or 0), Stage.QUERYING)
        elif status == QueryStatus.UPDATE_AVAILABLE:
            self._start_download(answer, now)
        else:
            self.stage = Stage.DONE
            try:
                self.result = QueryStatus(status).name.lower()
            except ValueError:
                self.result = f"status_{status}"

    def _start_download(self, answer: QueryImageResponse, now: float) -> None:
        try:
            designator = check_image_uri(answer.image_uri or "", self.provider_node_id)
        except ImageUriError as exc:
            self._fail(f"bad ImageURI: {exc}")
            return
        if answer.update_token is None or answer.software_version is None:
            self._fail("UpdateAvailable without UpdateToken or SoftwareVersion")
            return
        assert self.session is not None
        self._token = answer.update_token
        self._offered = answer.software_version
        self._sink = _Hash()
        rx = ReceiverTransfer(designator.encode(), self._sink,
                              max_block_size=self.behaviour.max_block_size or MAX_BLOCK_SIZE)
        self.downloads += 1
        self.stage = Stage.DOWNLOADING
        self._download = start_download(self.node, self.session, rx, now)

    def _on_event(self, event: object, now: float) -> None:
        if isinstance(event, DownloadCompleted) and event.download is self._download:
            assert self._sink is not None
            self.image_sha256 = self._sink.sha.digest()
            self.image_size = self._sink.size
            self._download = None
            self._apply(now)
        elif isinstance(event, DownloadFailed) and event.download is self._download:
            self._download = None
            self._log(f"download failed: {event.reason}")
            self._retry(now, f"download failed: {event.reason}")

    def _retry(self, now: float, why: str) -> None:
        self._download = None
        self.error = why
        self._wait(now, self.behaviour.retry_delay, Stage.QUERYING)

    def _apply(self, now: float) -> None:
        assert self.session is not None and self._token is not None and self._offered is not None
        request = ApplyUpdateRequest(update_token=self._token, new_version=self._offered)
        self.stage = Stage.APPLYING
        self._invocation = invoke(self.node, self.session, 0, OtaProviderCluster.ID,
                                  APPLY_UPDATE, request.to_value(), now)

    def _on_apply_answer(self, inv: Invocation, now: float) -> None:
        answer = self._answer(inv, now, Stage.APPLYING, "ApplyUpdateRequest", ApplyUpdateResponse)
        if answer is None:
            return
        self.applies.append(answer)
        if answer.action == ApplyUpdateAction.PROCEED:
            self._reboot(now)
        elif answer.action == ApplyUpdateAction.AWAIT_NEXT_ACTION:
            self._wait(now, float(answer.delayed_action_time), Stage.APPLYING)
        else:
            self._token = None
            self.stage, self.result = Stage.DONE, "discontinued"

    def _reboot(self, now: float) -> None:
        """Apply the image: the node restarts (its sessions are gone) on the new version."""
        assert self._offered is not None
        if self.session is not None:
            self.node.remove_session(self.session)
            self.session = None
        if self.behaviour.boots_old_version:
            self._log("came back on the old version")
            self._connect(now)  # and asks again, on the old version
            return
        self.version = self._offered
        if self.behaviour.never_notifies:
            self.stage, self.result = Stage.DONE, "updated_silently"
            return
        self._notify_pending = True
        self._connect(now)

    def _notify(self, now: float) -> None:
        assert self.session is not None and self._token is not None
        request = NotifyUpdateApplied(update_token=self._token, software_version=self.version)
        self.stage = Stage.NOTIFYING
        self._invocation = invoke(self.node, self.session, 0, OtaProviderCluster.ID,
                                  NOTIFY_APPLIED, request.to_value(), now)

    def _wait(self, now: float, seconds: float, then: Stage) -> None:
        self.stage = Stage.WAITING
        self.wait_until = now + seconds
        self._after_wait = then

    def _fail(self, why: str) -> None:
        self.error = why
        self.stage, self.result = Stage.FAILED, "failed"
        self._log(why)
