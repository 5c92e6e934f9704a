"""The node's side of commissioning: fail-safe context, operational credentials, rollback.

:class:`Commissionee` is what the General Commissioning and Operational Credentials clusters
call. It walks :class:`~.machine.CommissioningMachine` and keeps what each step added under the
fail-safe (the new operational key, the trusted root, the new fabric and its first ACL entry,
or the NOC an UpdateNOC replaced) so that disarming or expiry undoes exactly that
(11.10.7.2 / 11.10.7.3 fail-safe context). CommissioningComplete commits: the fabric and its
ACL go to the :class:`FabricStore` and survive restarts.

Sans-IO: time comes in as ``now``; the fail-safe timer is a node timer source; what the
runtime must act on (advertise a fabric, close the commissioning window) is emitted as node
events.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from matter_ota.commissioning.machine import (
    CommissioningMachine,
    CommissioningRefused,
    Event,
    Phase,
    Refusal,
)
from matter_ota.crypto import attestation, certs
from matter_ota.crypto.attestation import DeviceAttestation
from matter_ota.crypto.certs import CertificateError, MatterCertificate
from matter_ota.fabrics import FabricInfo, FabricTable, private_key_bytes
from matter_ota.im.acl import (
    AccessControl,
    AccessControlEntry,
    AuthMode,
    Privilege,
    is_cat_subject,
    is_operational_node_id,
)
from matter_ota.messaging.session import SecureSession, SessionKind
from matter_ota.node import Node

log = logging.getLogger("matter_ota.commissioning")

# 11.10.6.2 BasicCommissioningInfo: what the node announces (the SDK's defaults).
FAILSAFE_EXPIRY_LENGTH_S = 60
MAX_CUMULATIVE_FAILSAFE_S = 900
SUPPORTED_FABRICS = 5  # 11.18.5.3: at least 5


class NocStatus(enum.IntEnum):
    """NodeOperationalCertStatusEnum (11.18.4.2)."""

    OK = 0
    INVALID_PUBLIC_KEY = 1
    INVALID_NODE_OP_ID = 2
    INVALID_NOC = 3
    MISSING_CSR = 4
    TABLE_FULL = 5
    INVALID_ADMIN_SUBJECT = 6
    FABRIC_CONFLICT = 9
    LABEL_CONFLICT = 10
    INVALID_FABRIC_INDEX = 11


class NocRefused(Exception):
    """An AddNOC / UpdateNOC / label / remove refusal answered in NOCResponse."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


class FabricStore(Protocol):
    """Where committed fabrics live (the state store in the daemon)."""

    def save_fabric(self, fabric: FabricInfo, acl: Sequence[AccessControlEntry]) -> None: ...

    def remove_fabric(self, fabric_index: int) -> None: ...


class MemoryFabricStore:
    """A :class:`FabricStore` in memory (tests; a daemon without a state directory)."""

    def __init__(self) -> None:
        self.fabrics: dict[int, tuple[FabricInfo, tuple[AccessControlEntry, ...]]] = {}

    def save_fabric(self, fabric: FabricInfo, acl: Sequence[AccessControlEntry]) -> None:
        self.fabrics[fabric.fabric_index] = (fabric, tuple(acl))

    def remove_fabric(self, fabric_index: int) -> None:
        self.fabrics.pop(fabric_index, None)


# -- node events the runtime acts on --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FabricAdded:
    """AddNOC / UpdateNOC installed ``fabric`` (not yet committed): advertise it (4.3.2)."""

    fabric: FabricInfo


@dataclass(frozen=True, slots=True)
class FabricRemoved:
    """A fabric is gone (rollback or RemoveFabric): stop advertising it."""

    fabric_index: int


@dataclass(frozen=True, slots=True)
class CommissioningCompleted:
    """CommissioningComplete committed ``fabric_index``: close the commissioning window."""

    fabric_index: int


@dataclass(frozen=True, slots=True)
class FailSafeExpired:
    """The fail-safe expired or was disarmed and everything under it was rolled back."""

    reason: str


@dataclass
class _Context:
    """What was added under the current fail-safe (11.10.7.2)."""

    armed_by: int  # accessing fabric index at arming (0: a PASE session before AddNOC)
    armed_at: float
    deadline: float
    operational_key: ec.EllipticCurvePrivateKey | None = None
    key_for_update: bool = False
    root: MatterCertificate | None = None
    added_fabric: int | None = None
    replaced: FabricInfo | None = None  # the fabric an UpdateNOC replaced
    pase_sessions: list[SecureSession] = dataclasses.field(default_factory=list)


class Commissionee:
    """See the module docstring. ``cert_time(now)`` gives Unix seconds for certificate checks
    (None: no trusted time, validity periods are not checked)."""

    def __init__(self, node: Node, fabrics: FabricTable, access: AccessControl,
                 store: FabricStore, identity: DeviceAttestation | None, *,
                 cert_time: Callable[[float], int | None] = lambda _now: None,
                 supported_fabrics: int = SUPPORTED_FABRICS) -> None:
        self.node = node
        self.fabrics = fabrics
        self.access = access
        self.store = store
        self.identity = identity
        self.cert_time = cert_time
        self.supported_fabrics = supported_fabrics
        self.machine = CommissioningMachine()
        self.breadcrumb = 0
        self.committed: set[int] = {f.fabric_index for f in fabrics}
        self._ctx: _Context | None = None
        self._on_change: list[Callable[[], None]] = []
        # Sessions of a removed fabric, closed at the next timer run: the one that carried
        # RemoveFabric must still deliver its response (11.18.6.12).
        self._doomed: list[SecureSession] = []
        access.add_listener(self._acl_changed)
        node.add_timer_source(self)

    # -- observers (attribute change reports) ---------------------------------------------

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever fabrics, roots or the fail-safe change."""
        self._on_change.append(listener)

    def _changed(self) -> None:
        for listener in self._on_change:
            listener()

    # -- the fail-safe timer (node timer source) -------------------------------------------

    def next_deadline(self) -> float | None:
        if self._doomed:
            return 0.0  # at once
        return None if self._ctx is None else self._ctx.deadline

    def handle_timer(self, now: float) -> None:
        doomed, self._doomed = self._doomed, []
        for session in doomed:
            self.node.remove_session(session, "fabric_removed")
        if self._ctx is not None and now >= self._ctx.deadline:
            self.machine.advance(Event.EXPIRE)
            self._rollback("expired")

    @property
    def armed(self) -> bool:
        return self._ctx is not None

    @property
    def armed_by(self) -> int | None:
        return None if self._ctx is None else self._ctx.armed_by

    # -- General Commissioning ---------------------------------------------------------------

    def arm(self, expiry_s: int, breadcrumb: int, fabric_index: int, session: SecureSession | None,
            now: float) -> None:
        """ArmFailSafe (11.10.7.2); BUSY_WITH_OTHER_ADMIN if another fabric holds it."""
        if self._ctx is not None and self._ctx.armed_by != fabric_index:
            raise CommissioningRefused(Refusal.BUSY_WITH_OTHER_ADMIN,
                                       f"armed by fabric {self._ctx.armed_by}")
        if expiry_s == 0:
            if self._ctx is not None:
                self.machine.advance(Event.DISARM)
                self._rollback("disarmed")
            self.breadcrumb = breadcrumb
            return
        self.machine.advance(Event.ARM)
        if self._ctx is None:
            self._ctx = _Context(armed_by=fabric_index, armed_at=now, deadline=now)
            log.info("event=failsafe_armed seconds=%d fabric=%d", expiry_s, fabric_index)
        ctx = self._ctx
        # 11.10.7.2: re-arming never runs past MaxCumulativeFailsafeSeconds from the first arm.
        ctx.deadline = min(now + expiry_s, ctx.armed_at + MAX_CUMULATIVE_FAILSAFE_S)
        if session is not None and session.kind is SessionKind.PASE \
                and session not in ctx.pase_sessions:
            ctx.pase_sessions.append(session)
        self.breadcrumb = breadcrumb

    def complete(self, fabric_index: int, session: SecureSession | None, now: float) -> None:
        """CommissioningComplete (11.10.7.6): commit everything added under the fail-safe.

        Only over CASE on the fabric holding the fail-safe (the new one after AddNOC), else
        INVALID_AUTHENTICATION. A fail-safe armed without a new NOC is simply disarmed.
        """
        ctx = self._ctx
        self.machine.check(Event.COMPLETE)
        assert ctx is not None
        if session is None or session.kind is not SessionKind.CASE or \
                fabric_index != ctx.armed_by:
            raise CommissioningRefused(Refusal.INVALID_AUTHENTICATION,
                                       "CommissioningComplete must come over CASE on the "
                                       "fabric holding the fail-safe")
        self.machine.advance(Event.COMPLETE)
        self._ctx = None
        self.breadcrumb = 0
        fabric = self.fabrics.get(fabric_index)
        if (ctx.added_fabric is not None or ctx.replaced is not None) and fabric is not None:
            self.store.save_fabric(fabric, self.access.entries(fabric_index))
            self.committed.add(fabric_index)
            log.info("event=commissioning_complete fabric=%d node=0x%016X cfid=%s",
                     fabric_index, fabric.node_id, fabric.compressed_fabric_id.hex().upper())
            self.node.emit(CommissioningCompleted(fabric_index))
        else:
            log.info("event=failsafe_disarmed reason=commissioning_complete fabric=%d",
                     fabric_index)
        self._changed()

    def _rollback(self, reason: str) -> None:
        """Undo the fail-safe context (11.10.7.3 on expiry or disarm)."""
        ctx, self._ctx = self._ctx, None
        self.breadcrumb = 0
        if ctx is None:
            return
        if ctx.added_fabric is not None:
            self._drop_fabric(ctx.added_fabric)
        if ctx.replaced is not None:
            self.fabrics.add(ctx.replaced)
            self.node.emit(FabricAdded(ctx.replaced))
        for session in ctx.pase_sessions:
            session.fabric_index = 0
        log.info("event=failsafe_rolled_back reason=%s fabric_removed=%s", reason,
                 ctx.added_fabric if ctx.added_fabric is not None else "-")
        self.node.emit(FailSafeExpired(reason))
        self._changed()

    def _drop_fabric(self, fabric_index: int) -> None:
        self.fabrics.remove(fabric_index)
        self.access.remove_fabric(fabric_index)
        self._doomed += [s for s in self.node.sessions
                         if s.fabric_index == fabric_index and s.kind is SessionKind.CASE]
        self.node.emit(FabricRemoved(fabric_index))

    # -- Operational Credentials -------------------------------------------------------------

    def _identity(self) -> DeviceAttestation:
        if self.identity is None:
            raise CommissioningRefused(Refusal.CONSTRAINT_ERROR, "no attestation identity")
        return self.identity

    def attest(self, nonce: bytes, challenge: bytes) -> tuple[bytes, bytes]:
        """AttestationRequest (11.18.6.1): the elements and the DAC's signature."""
        identity = self._identity()
        elements = attestation.attestation_elements(identity.certification_declaration, nonce)
        return elements, identity.sign(elements + challenge)

    def certificate(self, kind: int) -> bytes:
        """CertificateChainRequest (11.18.6.3): 1 = DAC, 2 = PAI (X.509 DER)."""
        identity = self._identity()
        return identity.dac if kind == 1 else identity.pai

    def csr(self, nonce: bytes, for_update: bool, challenge: bytes) -> tuple[bytes, bytes]:
        """CSRRequest (11.18.6.5): a new operational key, its CSR in NOCSR elements, signed."""
        identity = self._identity()
        self.machine.check(Event.CSR)
        assert self._ctx is not None
        key = certs.generate_key()
        self.machine.advance(Event.CSR)
        self._ctx.operational_key, self._ctx.key_for_update = key, for_update
        elements = attestation.nocsr_elements(certs.make_csr(key), nonce)
        return elements, identity.sign(elements + challenge)

    def add_root(self, certificate: bytes) -> None:
        """AddTrustedRootCertificate (11.18.6.13): a self-signed RCAC, once per fail-safe."""
        self.machine.check(Event.ADD_ROOT)
        try:
            rcac = MatterCertificate.from_tlv(certificate)
            if rcac.issuer != rcac.subject or rcac.subject.rcac_id is None or not rcac.is_ca:
                raise CertificateError("not a self-issued RCAC")
            certs.verify_signature(rcac, rcac.public_key)
        except CertificateError as exc:
            raise CertificateError(f"RootCACertificate: {exc}") from None
        self.machine.advance(Event.ADD_ROOT)
        assert self._ctx is not None
        self._ctx.root = rcac
        self._changed()

    def _new_fabric(self, index: int, rcac: bytes, noc: bytes, icac: bytes | None,
                    key: ec.EllipticCurvePrivateKey, ipk: bytes, vendor_id: int, label: str,
                    now: float) -> FabricInfo:
        try:
            noc_cert = MatterCertificate.from_tlv(noc)
            if noc_cert.public_key != certs.public_key_bytes(key):
                raise NocRefused(NocStatus.INVALID_PUBLIC_KEY, "NOC key is not the CSR's key")
            fabric = FabricInfo(fabric_index=index, rcac=rcac, noc=noc, icac=icac,
                                operational_key=private_key_bytes(key), ipk_epoch_key=ipk,
                                vendor_id=vendor_id, label=label)
            certs.validate_chain(noc_cert, None if icac is None
                                 else MatterCertificate.from_tlv(icac),
                                 MatterCertificate.from_tlv(rcac), now=self.cert_time(now),
                                 trusted_root=True)  # its signature checked when installed
        except (CertificateError, ValueError) as exc:
            if isinstance(exc, NocRefused):
                raise
            raise NocRefused(NocStatus.INVALID_NOC, str(exc)) from None
        return fabric

    def add_noc(self, noc: bytes, icac: bytes | None, ipk: bytes, admin_subject: int,
                admin_vendor: int, session: SecureSession | None, now: float) -> int:
        """AddNOC (11.18.6.8): a new fabric and its first ACL entry (Administer for the
        CaseAdminSubject); the accessing PASE session joins the fabric. Returns its index."""
        try:
            self.machine.check(Event.ADD_NOC)
        except CommissioningRefused as exc:
            if exc.refusal is Refusal.MISSING_ROOT:
                raise NocRefused(NocStatus.INVALID_NOC, "no trusted root added") from None
            raise
        ctx = self._ctx
        assert ctx is not None and ctx.root is not None
        if ctx.operational_key is None or ctx.key_for_update:
            raise NocRefused(NocStatus.MISSING_CSR, "no CSRRequest for AddNOC in this fail-safe")
        if len(self.fabrics) >= self.supported_fabrics:
            raise NocRefused(NocStatus.TABLE_FULL, "fabric table full")
        if not (is_operational_node_id(admin_subject) or is_cat_subject(admin_subject)):
            raise NocRefused(NocStatus.INVALID_ADMIN_SUBJECT,
                             f"CaseAdminSubject 0x{admin_subject:016X}")
        index = self.fabrics.next_index()
        fabric = self._new_fabric(index, ctx.root.to_tlv(), noc, icac, ctx.operational_key, ipk,
                                  admin_vendor, "", now)
        try:
            self.fabrics.add(fabric)
        except ValueError:
            raise NocRefused(NocStatus.FABRIC_CONFLICT, "fabric already on this node") from None
        self.access.set_entries(index, [AccessControlEntry(
            index, Privilege.ADMINISTER, AuthMode.CASE, (admin_subject,))])
        self.machine.advance(Event.ADD_NOC)
        ctx.added_fabric = index
        ctx.armed_by = index  # the fail-safe now belongs to the new fabric (11.10.7.2)
        if session is not None and session.kind is SessionKind.PASE:
            session.fabric_index = index  # 11.18.6.8: the session now has a fabric
            if session not in ctx.pase_sessions:
                ctx.pase_sessions.append(session)
        log.info("event=noc_added fabric=%d node=0x%016X cfid=%s admin=0x%016X vendor=0x%04X",
                 index, fabric.node_id, fabric.compressed_fabric_id.hex().upper(),
                 admin_subject, admin_vendor)
        self.node.emit(FabricAdded(fabric))
        self._changed()
        return index

    def update_noc(self, noc: bytes, icac: bytes | None, fabric_index: int, now: float) -> int:
        """UpdateNOC (11.18.6.9): a new NOC (and key) for the accessing fabric."""
        self.machine.check(Event.UPDATE_NOC)
        ctx = self._ctx
        assert ctx is not None
        old = self.fabrics.get(fabric_index)
        if old is None:
            raise NocRefused(NocStatus.INVALID_FABRIC_INDEX, "no accessing fabric")
        if ctx.operational_key is None or not ctx.key_for_update:
            raise NocRefused(NocStatus.MISSING_CSR, "no CSRRequest for UpdateNOC")
        fabric = self._new_fabric(fabric_index, old.rcac, noc, icac, ctx.operational_key,
                                  old.ipk_epoch_key, old.vendor_id, old.label, now)
        if (fabric.fabric_id, fabric.root_public_key) != (old.fabric_id, old.root_public_key):
            raise NocRefused(NocStatus.INVALID_NOC, "UpdateNOC may not change the fabric")
        self.machine.advance(Event.UPDATE_NOC)
        ctx.replaced = old
        self.fabrics.add(fabric)
        self.node.emit(FabricAdded(fabric))
        self._changed()
        return fabric_index

    def update_label(self, fabric_index: int, label: str) -> int:
        """UpdateFabricLabel (11.18.6.11): unique among this node's fabrics."""
        fabric = self.fabrics.get(fabric_index)
        if fabric is None:
            raise NocRefused(NocStatus.INVALID_FABRIC_INDEX, "no accessing fabric")
        if label and any(f.label == label for f in self.fabrics if f.fabric_index != fabric_index):
            raise NocRefused(NocStatus.LABEL_CONFLICT, f"label {label!r} is taken")
        fabric = dataclasses.replace(fabric, label=label)
        self.fabrics.add(fabric)
        if fabric_index in self.committed:
            self.store.save_fabric(fabric, self.access.entries(fabric_index))
        self._changed()
        return fabric_index

    def remove_fabric(self, fabric_index: int) -> int:
        """RemoveFabric (11.18.6.12): the fabric, its ACL and its sessions, for good."""
        if self.fabrics.get(fabric_index) is None:
            raise NocRefused(NocStatus.INVALID_FABRIC_INDEX, f"no fabric {fabric_index}")
        if self._ctx is not None and self._ctx.added_fabric == fabric_index:
            self._ctx.added_fabric = None
        self._drop_fabric(fabric_index)
        self.committed.discard(fabric_index)
        self.store.remove_fabric(fabric_index)
        log.info("event=fabric_removed fabric=%d", fabric_index)
        self._changed()
        return fabric_index

    # -- what the attributes show ------------------------------------------------------------

    def trusted_roots(self) -> list[bytes]:
        """TrustedRootCertificates: the committed fabrics' roots and a pending one."""
        roots = [f.rcac for f in self.fabrics]
        if self._ctx is not None and self._ctx.root is not None:
            pending = self._ctx.root.to_tlv()
            if pending not in roots:
                roots.append(pending)
        return roots

    @property
    def phase(self) -> Phase:
        return self.machine.phase

    def _acl_changed(self, fabric_index: int) -> None:
        if fabric_index in self.committed:
            fabric = self.fabrics.get(fabric_index)
            if fabric is not None:
                self.store.save_fabric(fabric, self.access.entries(fabric_index))
