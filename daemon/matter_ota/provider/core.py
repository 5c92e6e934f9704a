"""The OTA Provider: QueryImage, ApplyUpdateRequest and NotifyUpdateApplied answered from the
policy engine, images served over BDX, every step recorded in the state store.

:class:`OtaProvider` is the :class:`~matter_ota.clusters.ota_provider.UpdateDecider` the OTA
Provider cluster calls, the ``device_lookup`` of the BDX server, a consumer of the BDX transfer
events and a timer source of the node. It is sans-IO like the rest of the core: time comes in
as the node's ``now``; ``wall`` maps it to POSIX seconds for the store and the engine (the
runtime supplies it; tests pass the identity).

Identity is the CASE session's, never the payload's: the device is (compressed fabric id of the
session's fabric, peer node id), and the ImageURI names the provider's own node id on that
fabric. An UpdateToken is 16 random bytes bound to that device in the store; ApplyUpdateRequest
and NotifyUpdateApplied with a token issued to another device are refused (INVALID_COMMAND).

Failure detection (outcome ``failed`` in the store, then the release's failure verdict):
a BDX transfer that ends in failure, no NotifyUpdateApplied within ``notify_timeout`` after the
download or the Proceed, a NotifyUpdateApplied with another version, and a device that asks
again on its old version after it was told to apply (or after it reported the new one). Past the
release's threshold and minimum sample the release is auto-stopped once (``auto_stop``: the
console's audited transition in the daemon).
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from matter_ota.bdx.image_source import ImageSource
from matter_ota.bdx.sender import (
    TransferCompleted,
    TransferFailed,
    TransferProgress,
    TransferStarted,
)
from matter_ota.bdx.transfers import TransferTable
from matter_ota.clusters.ota_provider import (
    ApplyUpdateRequest,
    ApplyUpdateResponse,
    NotifyUpdateApplied,
    QueryImage,
    QueryImageResponse,
)
from matter_ota.fabrics import FabricTable
from matter_ota.facts import outcomes
from matter_ota.im.messages import Status
from matter_ota.im.model import Context, IMStatusError
from matter_ota.messaging.session import SessionKind
from matter_ota.policy import engine
from matter_ota.policy.model import (
    ApplyAction,
    Decision,
    Device,
    DeviceRef,
    ImageInfo,
    Product,
    Query,
    QueryStatus,
    Release,
    ReleaseKey,
    ReleaseState,
)
from matter_ota.provider.uri import designator_in_uri, image_uri
from matter_ota.store import Store, TokenRecord, format_cfid

log = logging.getLogger("matter_ota.ota")

Decider = Callable[[Device, Query, ReleaseState, float], Decision]
ImageOpener = Callable[[ImageInfo], ImageSource | None]
AutoStop = Callable[[ReleaseKey, str], None]


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Timing of the provider's bookkeeping."""

    #: How long an UpdateToken stays valid: long enough for maintenance-window delays.
    token_ttl: float = 7 * 86400.0
    #: After the download completes (or ApplyUpdate says Proceed / when to come back) the
    #: requestor reboots into the image and sends NotifyUpdateApplied within this time, or
    #: the update counts as failed.
    notify_timeout: float = 3600.0


class Phase(enum.Enum):
    """Where one device's update is, as the provider saw it."""

    OFFERED = "offered"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    APPLYING = "applying"  # ApplyUpdate said Proceed (or AwaitNextAction)
    APPLIED = "applied"
    FAILED = "failed"


@dataclass(slots=True)
class Update:
    """One device's current update: the offer and how far it got."""

    ref: DeviceRef
    key: ReleaseKey
    image: ImageInfo
    designator: str  # as in the ImageURI (what the ReceiveInit names)
    token: bytes
    from_version: int
    phase: Phase = Phase.OFFERED
    transfer_id: int | None = None  # the store's transfer row
    deadline: float | None = None  # node time by which NotifyUpdateApplied is due


class OtaProvider:
    """See the module docstring."""

    def __init__(
        self,
        store: Store,
        state: Callable[[], ReleaseState],
        fabrics: FabricTable,
        open_image: ImageOpener,
        *,
        decide: Decider = engine.decide,
        wall: Callable[[float], float] = lambda now: now,
        auto_stop: AutoStop | None = None,
        settings: ProviderSettings = ProviderSettings(),
    ) -> None:
        self.store = store
        self.state = state
        self.fabrics = fabrics
        self.open_image = open_image
        self.decide = decide
        self.wall = wall
        self.auto_stop = auto_stop
        self.settings = settings
        self.transfers: TransferTable | None = None
        #: The node's clock (set by ``attach_bdx``): events carry no time of their own.
        self.clock: Callable[[], float] | None = None
        self.now = 0.0
        self.updates: dict[DeviceRef, Update] = {}
        self._by_transfer: dict[int, Update] = {}  # BDX transfer id -> update
        self._deadlines: list[tuple[float, int, DeviceRef]] = []
        self._seq = 0
        self._stopping: dict[ReleaseKey, str] = {}  # auto-stopped here: release seed
        # (device, release, version) that failed to apply: never offered again (the image
        # does not boot on that device; offering it again would loop download -> revert).
        self._apply_failed: set[tuple[DeviceRef, ReleaseKey, int]] = set()
        self._overlay: tuple[ReleaseState, int, frozenset[DeviceRef], ReleaseState] | None = None

    # -- identity ---------------------------------------------------------------------------

    def _identity(self, ctx: Context) -> tuple[DeviceRef, int]:
        """(the requestor, the provider's node id on its fabric) from the CASE session."""
        session = ctx.session
        if session is None or session.kind is not SessionKind.CASE:
            raise IMStatusError(Status.UNSUPPORTED_ACCESS, reason="the OTA commands need CASE")
        fabric = self.fabrics.get(session.fabric_index)
        if fabric is None:
            raise IMStatusError(Status.UNSUPPORTED_ACCESS, reason="fabric removed")
        cfid = int.from_bytes(fabric.compressed_fabric_id, "big")
        return DeviceRef(cfid, session.peer_node_id), fabric.node_id

    def ref_for_transfer(self, device: Hashable) -> DeviceRef | None:
        """The device of a BDX transfer key (``bdx.server.device_key``): CASE only."""
        if not (isinstance(device, tuple) and len(device) == 3 and device[0] == "case"):
            return None
        fabric = self.fabrics.get(device[1])
        if fabric is None:
            return None
        return DeviceRef(int.from_bytes(fabric.compressed_fabric_id, "big"), device[2])

    # -- the engine's facts -----------------------------------------------------------------

    def current_state(self) -> ReleaseState:
        """The service's state with the live BDX transfer count and devices."""
        base = self.state()
        table = self.transfers
        if table is None:
            return base
        active = len(table)
        devices = frozenset(r for t in table.transfers()
                            if (r := self.ref_for_transfer(t.device)) is not None)
        if base.active_transfers == active and base.transferring == devices:
            return base
        cached = self._overlay
        if cached is not None and cached[0] is base and cached[1] == active \
                and cached[2] == devices:
            return cached[3]
        state = dataclasses.replace(base, active_transfers=active, transferring=devices)
        self._overlay = (base, active, devices, state)
        return state

    # -- QueryImage (11.20.6.5.1) -----------------------------------------------------------

    def query_image(self, ctx: Context, request: QueryImage) -> QueryImageResponse:
        self.now = now = ctx.now
        ref, provider_node = self._identity(ctx)
        wall = self.wall(now)
        self._check_reverted(ref, request.software_version, now)
        query = Query(
            request.vendor_id, request.product_id, request.software_version,
            tuple(request.protocols_supported), request.hardware_version, request.location,
            bool(request.requestor_can_consent), request.metadata_for_provider,
        )
        device = Device(ref.fabric, ref.node, request.vendor_id, request.product_id,
                        request.software_version, request.hardware_version, request.location)
        state = self.current_state()
        channel = engine.channel_for(device, query, state.channels)
        facts = state.facts.get((channel, request.vendor_id, request.product_id))
        if facts is not None and facts.cohort is not None:
            facts.cohort.add_known(ref)  # the ledger row below makes it known for good
        decision = self.decide(device, query, state, wall)
        release = decision.release
        offered = decision.image
        if decision.offered and release is not None and offered is not None:
            if self._stopping.get(release.key) == release.cohort_seed:
                decision = dataclasses.replace(
                    decision, status=QueryStatus.NOT_AVAILABLE, code="auto_stopped",
                    image=None,
                    reason="the release is being auto-stopped (failures past its threshold)")
            elif (ref, release.key, offered.version) in self._apply_failed:
                decision = dataclasses.replace(
                    decision, status=QueryStatus.NOT_AVAILABLE, code="failed_before",
                    image=None, reason=f"the device failed to apply version "
                    f"{offered.version} before; it is not offered again")
        cfid = format_cfid(ref.fabric)
        self.store.record_query(
            compressed_fabric_id=cfid, node_id=ref.node, vendor_id=request.vendor_id,
            product_id=request.product_id, software_version=request.software_version,
            hardware_version=request.hardware_version, channel=decision.channel or channel,
            result=decision.code, now=wall,
        )
        log.info("event=query node=0x%016X fabric=%s version=%d decision=%s reason=%s",
                 ref.node, cfid, request.software_version, decision.code, decision.reason)
        if decision.status is QueryStatus.BUSY:
            return QueryImageResponse(status=QueryStatus.BUSY,
                                      delayed_action_time=decision.delayed_action_time)
        image = decision.image
        if not decision.offered or image is None or release is None:
            return QueryImageResponse(status=decision.status)
        return self._offer(ref, provider_node, request, decision, release, image, wall)

    def _offer(self, ref: DeviceRef, provider_node: int, request: QueryImage,
               decision: Decision, release: Release, image: ImageInfo,
               wall: float) -> QueryImageResponse:
        cfid = format_cfid(ref.fabric)
        token = self.store.issue_token(cfid, ref.node, image.version, wall,
                                       self.settings.token_ttl)
        key = release.key
        if not decision.pinned:  # policy: pinned offers are not cohort offers
            facts = self.current_state().facts.get(
                (key.channel, key.product.vendor_id, key.product.product_id))
            if facts is not None and facts.cohort is not None:
                facts.cohort.mark_offered(ref)
            self.store.mark_offered(
                channel=key.channel, vendor_id=key.product.vendor_id,
                product_id=key.product.product_id, cohort_seed=release.cohort_seed,
                compressed_fabric_id=cfid, node_id=ref.node, now=wall)
        self.store.set_outcome(
            channel=key.channel, vendor_id=key.product.vendor_id,
            product_id=key.product.product_id, software_version=image.version,
            compressed_fabric_id=cfid, node_id=ref.node, state="offered", now=wall)
        old = self.updates.get(ref)
        if old is not None and old.transfer_id is not None:
            self._by_transfer = {t: u for t, u in self._by_transfer.items() if u is not old}
        designator = designator_in_uri(image.designator)
        self.updates[ref] = Update(ref, key, image, designator, token,
                                   request.software_version)
        return QueryImageResponse(
            status=QueryStatus.UPDATE_AVAILABLE,
            image_uri=image_uri(provider_node, image.designator),
            software_version=image.version,
            software_version_string=(image.version_string or str(image.version))[:64],
            update_token=token,
            user_consent_needed=True if decision.user_consent_needed else None,
        )

    # -- BDX: which image a device may download ---------------------------------------------

    def lookup(self, device: Hashable, designator: str) -> ImageSource | None:
        """The BDX ``device_lookup``: the image this device was offered, while its release
        is LIVE and still serves that version; None (FILE_DESIGNATOR_UNKNOWN) otherwise."""
        ref = self.ref_for_transfer(device)
        update = self.updates.get(ref) if ref is not None else None
        if update is None or update.designator != designator:
            log.info("event=bdx_refused device=%s designator=%r reason=not_offered",
                     device, designator)
            return None
        release = self.state().releases.get(update.key)
        if release is None or not release.live or (
                release.version is not None and release.version != update.image.version):
            log.info("event=bdx_refused device=%s designator=%r reason=release_changed",
                     device, designator)
            return None
        return self.open_image(update.image)

    def handle_event(self, event: object) -> None:
        """Record a BDX transfer event (``TransferStarted`` ... from the node's events)."""
        if self.clock is not None:
            self.now = self.clock()
        if isinstance(event, TransferStarted):
            ref = self.ref_for_transfer(event.device)
            update = self.updates.get(ref) if ref is not None else None
            if update is None:
                return
            key = update.key
            update.transfer_id = self.store.start_transfer(
                compressed_fabric_id=format_cfid(update.ref.fabric), node_id=update.ref.node,
                channel=key.channel, vendor_id=key.product.vendor_id,
                product_id=key.product.product_id, software_version=update.image.version,
                total_bytes=event.length, now=self.wall(self.now))
            update.phase = Phase.DOWNLOADING
            self._by_transfer[event.transfer_id] = update
        elif isinstance(event, TransferProgress):
            update = self._by_transfer.get(event.transfer_id)
            if update is not None and update.transfer_id is not None:
                self.store.progress_transfer(update.transfer_id, event.bytes_sent)
        elif isinstance(event, TransferCompleted):
            update = self._by_transfer.pop(event.transfer_id, None)
            if update is None or update.transfer_id is None:
                return
            self.store.end_transfer(update.transfer_id, "completed", self.wall(self.now))
            update.phase = Phase.DOWNLOADED
            self._expect_notify(update, self.now + self.settings.notify_timeout)
        elif isinstance(event, TransferFailed):
            update = self._by_transfer.pop(event.transfer_id, None)
            if update is None or update.transfer_id is None:
                return
            end = event.reason.store_state
            self.store.end_transfer(update.transfer_id, end, self.wall(self.now),
                                    f"{event.reason.value}: {event.detail}")
            if end == "failed":
                update.phase = Phase.FAILED
                self._failure_check(update.key)

    # -- ApplyUpdateRequest (11.20.6.5.3) ---------------------------------------------------

    def apply_update(self, ctx: Context, request: ApplyUpdateRequest) -> ApplyUpdateResponse:
        self.now = now = ctx.now
        ref, _ = self._identity(ctx)
        wall = self.wall(now)
        record = self._token(ref, request.update_token, wall)
        update = self._update_for(ref, record)
        release = None
        if update is not None and update.token == request.update_token:
            release = self.state().releases.get(update.key)
            if release is not None and (request.new_version != record.software_version or (
                    release.version is not None and release.version != record.software_version)):
                release = None  # the release moved on to another image: start over
        answer = engine.apply_update(release, wall)
        if update is not None and answer.action is not ApplyAction.DISCONTINUE:
            update.phase = Phase.APPLYING
            self._expect_notify(
                update, now + answer.delayed_action_time + self.settings.notify_timeout)
        elif update is not None:
            self._forget(update)
        log.info("event=apply node=0x%016X version=%d action=%s delay=%d reason=%s",
                 ref.node, request.new_version, answer.action.name, answer.delayed_action_time,
                 answer.reason)
        return ApplyUpdateResponse(action=answer.action,
                                   delayed_action_time=answer.delayed_action_time)

    # -- NotifyUpdateApplied (11.20.6.5.5) --------------------------------------------------

    def update_applied(self, ctx: Context, request: NotifyUpdateApplied) -> None:
        self.now = now = ctx.now
        ref, _ = self._identity(ctx)
        wall = self.wall(now)
        record = self._token(ref, request.update_token, wall)
        update = self._update_for(ref, record)
        if update is None or update.token != request.update_token:
            log.info("event=applied node=0x%016X version=%d outcome=unknown_update",
                     ref.node, request.software_version)
            return
        if request.software_version == record.software_version:
            self._outcome(update, "applied", "", wall)
            update.phase = Phase.APPLIED
            update.deadline = None
        else:
            self._fail(update, f"NotifyUpdateApplied reports version {request.software_version}, "
                       f"expected {record.software_version}")
        log.info("event=applied node=0x%016X version=%d outcome=%s", ref.node,
                 request.software_version, update.phase.value)

    def _update_for(self, ref: DeviceRef, record: TokenRecord) -> Update | None:
        """The device's update in flight; after a restart (or once forgotten), rebuilt from
        the store: the token's version and the ledger's channel name the release's image."""
        update = self.updates.get(ref)
        if update is not None and update.token == record.token:
            return update
        device = self.store.device(record.compressed_fabric_id, record.node_id)
        if device is None or device.channel is None:
            return update
        key = ReleaseKey(device.channel, Product(device.vendor_id, device.product_id))
        image = next((i for i in self.state().images.get(key, ())
                      if i.version == record.software_version), None)
        if image is None:
            return update
        rebuilt = Update(ref, key, image, designator_in_uri(image.designator), record.token,
                         device.software_version, Phase.DOWNLOADED)
        self.updates[ref] = rebuilt
        log.info("event=update_rebuilt node=0x%016X release=%s version=%d", ref.node, key,
                 image.version)
        return rebuilt

    def _token(self, ref: DeviceRef, token: bytes, wall: float) -> TokenRecord:
        record = self.store.check_token(token, format_cfid(ref.fabric), ref.node, wall)
        if record is None:
            raise IMStatusError(Status.INVALID_COMMAND,
                                reason="UpdateToken unknown, expired or another device's")
        return record

    # -- failure detection ------------------------------------------------------------------

    def _check_reverted(self, ref: DeviceRef, version: int, now: float) -> None:
        update = self.updates.get(ref)
        if update is None or version >= update.image.version:
            return
        if update.phase is Phase.APPLIED:
            self._fail(update, f"back on version {version} after applying "
                       f"{update.image.version}")
        elif update.phase is Phase.APPLYING and version == update.from_version:
            self._fail(update, f"asked again on its old version {version} after ApplyUpdate")

    def _expect_notify(self, update: Update, deadline: float) -> None:
        update.deadline = deadline
        self._seq += 1
        heapq.heappush(self._deadlines, (deadline, self._seq, update.ref))

    def next_deadline(self) -> float | None:
        """When the next NotifyUpdateApplied is overdue (the node's TimerSource)."""
        heap = self._deadlines
        while heap:
            deadline, _, ref = heap[0]
            update = self.updates.get(ref)
            if update is not None and update.deadline == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        self.now = now
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _, _, ref = heapq.heappop(self._deadlines)
            update = self.updates[ref]
            self._fail(update, f"no NotifyUpdateApplied within "
                       f"{self.settings.notify_timeout:g} s")

    def _fail(self, update: Update, reason: str) -> None:
        """An update that failed after the download (applying, rebooting, notifying)."""
        self._apply_failed.add((update.ref, update.key, update.image.version))
        update.phase = Phase.FAILED
        update.deadline = None
        self._outcome(update, "failed", reason, self.wall(self.now))
        log.warning("event=update_failed node=0x%016X release=%s version=%d reason=%s",
                    update.ref.node, update.key, update.image.version, reason)
        self._failure_check(update.key)

    def _outcome(self, update: Update, state: str, reason: str, wall: float) -> None:
        key = update.key
        self.store.set_outcome(
            channel=key.channel, vendor_id=key.product.vendor_id,
            product_id=key.product.product_id, software_version=update.image.version,
            compressed_fabric_id=format_cfid(update.ref.fabric), node_id=update.ref.node,
            state=state, now=wall, reason=reason)

    def _forget(self, update: Update) -> None:
        update.deadline = None
        if self.updates.get(update.ref) is update:
            del self.updates[update.ref]

    def _failure_check(self, key: ReleaseKey) -> None:
        """Auto-stop the release once its failures cross the threshold (policy's verdict)."""
        release = self.state().releases.get(key)
        if release is None or not release.live or release.failure is None:
            return
        if self._stopping.get(key) == release.cohort_seed:
            return
        verdict = engine.failure_verdict(release, outcomes(self.store, release))
        if verdict is None:
            return
        self._stopping[key] = release.cohort_seed
        log.warning("event=auto_stop release=%s reason=%s", key, verdict)
        if self.auto_stop is not None:
            try:
                self.auto_stop(key, verdict)
            except Exception:  # the file may be invalid or busy: offers stay stopped here
                log.exception("event=auto_stop_failed release=%s", key)
        else:
            self.store.audit(actor="daemon", action="auto-stop", channel=key.channel,
                             product=str(key.product), before=None, after=None,
                             reason=verdict, now=self.wall(self.now))
