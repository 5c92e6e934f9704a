"""Node Operational Credentials cluster (0x003E), Matter Core spec 11.18.

Attestation (AttestationRequest, CertificateChainRequest), the operational key (CSRRequest),
the fabric (AddTrustedRootCertificate, AddNOC, UpdateNOC, UpdateFabricLabel, RemoveFabric) and
the attributes that show them. The work is :class:`~matter_ota.commissioning.commissionee.
Commissionee`'s; here refusals become the spec's answers: IM statuses for the state machine's
(:data:`_STATUSES`), NOCResponse status codes for credential problems.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matter_ota import tlv
from matter_ota.commissioning.commissionee import Commissionee, NocRefused, NocStatus
from matter_ota.commissioning.machine import CommissioningRefused, Refusal
from matter_ota.crypto.attestation import ATTESTATION_NONCE_LENGTH
from matter_ota.crypto.certs import CertificateError
from matter_ota.im.acl import Privilege
from matter_ota.im.messages import Status
from matter_ota.im.model import Attribute, Cluster, Context, IMStatusError, command, constant
from matter_ota.messaging.session import SecureSession, SessionKind

FABRIC_INDEX_TAG = 0xFE  # 7.13.6
MAX_CERT = 400  # 11.18.4.x: a Matter certificate is at most 400 octets
MAX_DER_CERT = 600  # 11.18.6.4: a DAC / PAI in X.509 DER

_STATUSES = {
    Refusal.FAILSAFE_REQUIRED: Status.FAILSAFE_REQUIRED,
    Refusal.CONSTRAINT_ERROR: Status.CONSTRAINT_ERROR,
}


def _status(exc: CommissioningRefused) -> IMStatusError:
    return IMStatusError(_STATUSES.get(exc.refusal, Status.FAILURE), reason=exc.reason)


def _challenge(ctx: Context) -> bytes:
    """The session's AttestationChallenge (4.13.2.6 / 4.14.2.6)."""
    session = ctx.session
    if not isinstance(session, SecureSession):
        raise IMStatusError(Status.UNSUPPORTED_ACCESS, reason="no secure session")
    return session.keys.attestation_challenge


@dataclass(kw_only=True)
class NOCStruct(tlv.Struct):
    """11.18.4.4."""

    noc: bytes = tlv.field(1, tlv.Bytes(max_len=MAX_CERT))
    icac: bytes | None = tlv.field(2, tlv.Bytes(max_len=MAX_CERT), nullable=True)
    fabric_index: int = tlv.field(FABRIC_INDEX_TAG, tlv.U8)


@dataclass(kw_only=True)
class FabricDescriptorStruct(tlv.Struct):
    """11.18.4.5."""

    root_public_key: bytes = tlv.field(1, tlv.Bytes(min_len=65, max_len=65))
    vendor_id: int = tlv.field(2, tlv.U16)
    fabric_id: int = tlv.field(3, tlv.U64)
    node_id: int = tlv.field(4, tlv.U64)
    label: str = tlv.field(5, tlv.Str(max_len=32))
    fabric_index: int = tlv.field(FABRIC_INDEX_TAG, tlv.U8)


@dataclass(kw_only=True)
class AttestationRequest(tlv.Struct):
    nonce: bytes = tlv.field(0, tlv.Bytes(min_len=ATTESTATION_NONCE_LENGTH,
                                          max_len=ATTESTATION_NONCE_LENGTH))


@dataclass(kw_only=True)
class AttestationResponse(tlv.Struct):
    elements: bytes = tlv.field(0, tlv.Bytes(max_len=900))
    signature: bytes = tlv.field(1, tlv.Bytes(min_len=64, max_len=64))


@dataclass(kw_only=True)
class CertificateChainRequest(tlv.Struct):
    certificate_type: int = tlv.field(0, tlv.U8)


@dataclass(kw_only=True)
class CertificateChainResponse(tlv.Struct):
    certificate: bytes = tlv.field(0, tlv.Bytes(max_len=MAX_DER_CERT))


@dataclass(kw_only=True)
class CSRRequest(tlv.Struct):
    nonce: bytes = tlv.field(0, tlv.Bytes(min_len=ATTESTATION_NONCE_LENGTH,
                                          max_len=ATTESTATION_NONCE_LENGTH))
    is_for_update_noc: bool | None = tlv.field(1, tlv.Bool, optional=True)


@dataclass(kw_only=True)
class CSRResponse(tlv.Struct):
    nocsr_elements: bytes = tlv.field(0, tlv.Bytes(max_len=900))
    signature: bytes = tlv.field(1, tlv.Bytes(min_len=64, max_len=64))


@dataclass(kw_only=True)
class AddNOC(tlv.Struct):
    noc: bytes = tlv.field(0, tlv.Bytes(max_len=MAX_CERT))
    icac: bytes | None = tlv.field(1, tlv.Bytes(max_len=MAX_CERT), optional=True)
    ipk: bytes = tlv.field(2, tlv.Bytes(min_len=16, max_len=16))
    case_admin_subject: int = tlv.field(3, tlv.U64)
    admin_vendor_id: int = tlv.field(4, tlv.U16)


@dataclass(kw_only=True)
class UpdateNOC(tlv.Struct):
    noc: bytes = tlv.field(0, tlv.Bytes(max_len=MAX_CERT))
    icac: bytes | None = tlv.field(1, tlv.Bytes(max_len=MAX_CERT), optional=True)


@dataclass(kw_only=True)
class NOCResponse(tlv.Struct):
    status_code: int = tlv.field(0, tlv.U8)
    fabric_index: int | None = tlv.field(1, tlv.U8, optional=True)
    debug_text: str | None = tlv.field(2, tlv.Str(max_len=128), optional=True)


@dataclass(kw_only=True)
class UpdateFabricLabel(tlv.Struct):
    label: str = tlv.field(0, tlv.Str(max_len=32))


@dataclass(kw_only=True)
class RemoveFabric(tlv.Struct):
    fabric_index: int = tlv.field(0, tlv.U8)


@dataclass(kw_only=True)
class AddTrustedRootCertificate(tlv.Struct):
    certificate: bytes = tlv.field(0, tlv.Bytes(max_len=MAX_CERT))


def _noc_response(fn: Callable[..., int], *args: object) -> NOCResponse:
    """Run a commissionee step answered by NOCResponse (11.18.6.10)."""
    try:
        index = fn(*args)
    except NocRefused as exc:
        return NOCResponse(status_code=exc.status, debug_text=exc.reason[:128])
    except CommissioningRefused as exc:
        raise _status(exc) from None
    return NOCResponse(status_code=NocStatus.OK, fabric_index=int(index))


class OperationalCredentialsCluster(Cluster):
    """See the module docstring; every command needs Administer (11.18.6)."""

    ID = 0x003E
    REVISION = 1

    def __init__(self, commissionee: Commissionee) -> None:
        super().__init__()
        self.commissionee = commissionee
        commissionee.subscribe(lambda: self.changed(None))

    # -- attributes ----------------------------------------------------------------------

    def _nocs(self, ctx: Context) -> list[NOCStruct]:
        # Fabric-sensitive: a reader sees its own fabric's NOC only (11.18.5.1).
        return [NOCStruct(noc=f.noc, icac=f.icac, fabric_index=f.fabric_index)
                for f in self.commissionee.fabrics if f.fabric_index == ctx.fabric_index]

    def _fabrics(self, ctx: Context) -> list[FabricDescriptorStruct]:
        return [FabricDescriptorStruct(root_public_key=f.root_public_key, vendor_id=f.vendor_id,
                                       fabric_id=f.fabric_id, node_id=f.node_id, label=f.label,
                                       fabric_index=f.fabric_index)
                for f in sorted(self.commissionee.fabrics, key=lambda f: f.fabric_index)
                if not ctx.fabric_filtered or f.fabric_index == ctx.fabric_index]

    def attributes(self) -> Sequence[Attribute]:
        c = self.commissionee
        return [
            Attribute(0x0000, tlv.ArrayOf(NOCStruct), self._nocs,
                      read_privilege=Privilege.ADMINISTER, fabric_scoped=True),
            Attribute(0x0001, tlv.ArrayOf(FabricDescriptorStruct), self._fabrics,
                      fabric_scoped=True),
            constant(0x0002, tlv.U8, c.supported_fabrics),
            Attribute(0x0003, tlv.U8, lambda _c: len(c.committed)),
            Attribute(0x0004, tlv.ArrayOf(tlv.Bytes(max_len=MAX_CERT)),
                      lambda _c: c.trusted_roots()),
            Attribute(0x0005, tlv.U8, lambda ctx: ctx.fabric_index),
        ]

    # -- commands -------------------------------------------------------------------------

    @command(0x00, AttestationRequest, privilege=Privilege.ADMINISTER, response_id=0x01)
    def attestation_request(self, ctx: Context, request: AttestationRequest
                            ) -> AttestationResponse:
        try:
            elements, signature = self.commissionee.attest(request.nonce, _challenge(ctx))
        except CommissioningRefused as exc:
            raise _status(exc) from None
        return AttestationResponse(elements=elements, signature=signature)

    @command(0x02, CertificateChainRequest, privilege=Privilege.ADMINISTER, response_id=0x03)
    def certificate_chain_request(self, ctx: Context, request: CertificateChainRequest
                                  ) -> CertificateChainResponse:
        if request.certificate_type not in (1, 2):  # 11.18.4.3 CertificateChainTypeEnum
            raise IMStatusError(Status.INVALID_COMMAND, reason="certificate type")
        try:
            return CertificateChainResponse(
                certificate=self.commissionee.certificate(request.certificate_type))
        except CommissioningRefused as exc:
            raise _status(exc) from None

    @command(0x04, CSRRequest, privilege=Privilege.ADMINISTER, response_id=0x05)
    def csr_request(self, ctx: Context, request: CSRRequest) -> CSRResponse:
        # 11.18.6.5: a key for UpdateNOC is asked over CASE, by the fabric it is for.
        if request.is_for_update_noc and (ctx.session is None
                                          or ctx.session.kind is not SessionKind.CASE):
            raise IMStatusError(Status.INVALID_COMMAND, reason="IsForUpdateNOC over PASE")
        try:
            elements, signature = self.commissionee.csr(
                request.nonce, bool(request.is_for_update_noc), _challenge(ctx))
        except CommissioningRefused as exc:
            raise _status(exc) from None
        return CSRResponse(nocsr_elements=elements, signature=signature)

    @command(0x0B, AddTrustedRootCertificate, privilege=Privilege.ADMINISTER)
    def add_trusted_root(self, ctx: Context, request: AddTrustedRootCertificate) -> None:
        try:
            self.commissionee.add_root(request.certificate)
        except CommissioningRefused as exc:
            raise _status(exc) from None
        except CertificateError as exc:
            raise IMStatusError(Status.INVALID_COMMAND, reason=str(exc)) from None

    @command(0x06, AddNOC, privilege=Privilege.ADMINISTER, response_id=0x08)
    def add_noc(self, ctx: Context, request: AddNOC) -> NOCResponse:
        return _noc_response(self.commissionee.add_noc, request.noc, request.icac, request.ipk,
                             request.case_admin_subject, request.admin_vendor_id, ctx.session,
                             ctx.now)

    @command(0x07, UpdateNOC, privilege=Privilege.ADMINISTER, response_id=0x08)
    def update_noc(self, ctx: Context, request: UpdateNOC) -> NOCResponse:
        return _noc_response(self.commissionee.update_noc, request.noc, request.icac,
                             ctx.fabric_index, ctx.now)

    @command(0x09, UpdateFabricLabel, privilege=Privilege.ADMINISTER, response_id=0x08)
    def update_fabric_label(self, ctx: Context, request: UpdateFabricLabel) -> NOCResponse:
        return _noc_response(self.commissionee.update_label, ctx.fabric_index, request.label)

    @command(0x0A, RemoveFabric, privilege=Privilege.ADMINISTER, response_id=0x08)
    def remove_fabric(self, ctx: Context, request: RemoveFabric) -> NOCResponse:
        return _noc_response(self.commissionee.remove_fabric, request.fabric_index)
