"""CASE, certificate-authenticated session establishment (spec 4.14.2), both roles, sans-IO.

Each role is a state machine driven by table, ``(state, opcode) -> handler``; the handler returns
the messages to send and the next state. A message the table does not list for the current state
raises :class:`UnexpectedMessage` and leaves the state unchanged. Any other failure raises
:class:`CaseError`, a :class:`StatusError` carrying the StatusReport for the peer, and moves the
handshake to FAILED. Codes follow connectedhomeip: a destination id naming none of our fabrics is
NO_SHARED_TRUST_ROOTS, everything else (bad certificate, signature, MIC, node id) is
INVALID_PARAMETER, both under general FAILURE; too many handshakes is BUSY.

Full handshake::

    initiator                                          responder
    Sigma1 (random, session id, destination id, eph key) ──▶
          ◀── Sigma2 (random, session id, eph key, {NOC, ICAC, sig, resumption id}S2K)
    Sigma3 ({NOC, ICAC, sig}S3K)                        ──▶
                                          ◀── StatusReport SESSION_ESTABLISHMENT_SUCCESS

Resumption: Sigma1 also carries (resumption id, initiatorResumeMIC); a responder that still has
the record answers Sigma2_Resume (new resumption id, sigma2ResumeMIC) and the initiator closes with
the success StatusReport. Keys: HKDF(shared secret, initiatorRandom ‖ resumption id,
"SessionResumptionKeys"). A responder without the record, or whose MIC check fails, falls back to
the full handshake.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from dataclasses import dataclass
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from matter_ota import tlv
from matter_ota.crypto import case_keys, certs
from matter_ota.crypto.case_keys import RANDOM_LENGTH, RESUMPTION_ID_LENGTH
from matter_ota.crypto.certs import CertificateError, ChainInfo
from matter_ota.fabrics import FabricInfo, FabricTable
from matter_ota.messaging.crypto import SessionKeys, derive_session_keys
from matter_ota.messaging.session import DEFAULT_PARAMETERS, SessionParameters
from matter_ota.messaging.status import SecureChannelCode, StatusReport
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.secure_channel import common
from matter_ota.secure_channel.case_messages import (
    Sigma1,
    Sigma2,
    Sigma2Resume,
    Sigma3,
    TBEData2,
    TBEData3,
    TBSData,
    decode_flat,
)
from matter_ota.secure_channel.common import (
    HandshakeError,
    Random,
    Send,
    decode_message,
    success_report,
)
from matter_ota.secure_channel.resumption import ResumptionRecord, ResumptionStore
from matter_ota.secure_channel.session_params import SessionParametersTLV, peer_parameters


class CaseError(HandshakeError):
    """A failed CASE step; ``report`` is the StatusReport to send to the peer."""


class UnexpectedMessage(CaseError, common.UnexpectedMessage):
    """A message the current state does not accept; the state is unchanged."""


class PeerReportedFailure(CaseError, common.PeerReportedFailure):
    """The peer ended the handshake with a failure StatusReport (nothing to send back)."""


class State(enum.Enum):
    """Where a CASE handshake is; each role uses some of them."""
    START = "start"
    WAIT_SIGMA1 = "wait-sigma1"
    WAIT_SIGMA2 = "wait-sigma2"
    WAIT_SIGMA3 = "wait-sigma3"
    WAIT_STATUS = "wait-status"  # initiator, after Sigma3
    WAIT_RESUME_STATUS = "wait-resume-status"  # responder, after Sigma2_Resume
    ESTABLISHED = "established"
    FAILED = "failed"


@dataclass(frozen=True)
class CaseResult:
    """An established CASE session, ready for the session table, and its resumption record."""

    local_session_id: int
    peer_session_id: int
    keys: SessionKeys
    is_initiator: bool
    fabric_index: int
    local_node_id: int
    peer_node_id: int
    peer_cats: tuple[int, ...]
    peer_params: SessionParameters
    resumed: bool
    resumption: ResumptionRecord


@dataclass(frozen=True)
class _Sigma2Sent:
    """What the responder keeps between its Sigma2 and the initiator's Sigma3."""

    fabric: FabricInfo
    sigma1: bytes
    sigma2: bytes
    shared: bytes
    eph_pub: bytes
    peer_eph_pub: bytes
    peer_session_id: int
    peer_params: SessionParameters
    resumption_id: bytes


_T = TypeVar("_T", bound=tlv.Struct)


def _decode(schema: type[_T], payload: bytes) -> _T:
    return decode_message(schema, payload, CaseError, decode_flat)


def _public_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def _ecdh(key: ec.EllipticCurvePrivateKey, peer_point: bytes) -> bytes:
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_point)
        return key.exchange(ec.ECDH(), peer)
    except ValueError as e:
        raise CaseError(f"bad ephemeral public key: {e}") from None


def _sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(message, certs.ECDSA_SHA256))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        certs.public_key_from_bytes(public_key).verify(der, message, certs.ECDSA_SHA256)
    except (InvalidSignature, CertificateError):
        raise CaseError("TBS signature does not verify") from None


def _sign_tbs(fabric: FabricInfo, sender_eph_pub: bytes, receiver_eph_pub: bytes) -> bytes:
    """Our signature over the TBSData naming our certificates and both ephemeral keys."""
    tbs = TBSData(
        noc=fabric.noc,
        icac=fabric.icac,
        sender_eph_pub_key=sender_eph_pub,
        receiver_eph_pub_key=receiver_eph_pub,
    ).encode()
    return _sign(fabric.private_key, tbs)


def _verify_tbs(
    info: ChainInfo,
    noc: bytes,
    icac: bytes | None,
    signature: bytes,
    sender_eph_pub: bytes,
    receiver_eph_pub: bytes,
) -> None:
    """The peer's signature over the TBSData naming its certificates and both ephemeral keys."""
    tbs = TBSData(
        noc=noc, icac=icac, sender_eph_pub_key=sender_eph_pub, receiver_eph_pub_key=receiver_eph_pub
    ).encode()
    _verify(info.public_key, tbs, signature)


def _open_tbe(schema: type[_T], key: bytes, nonce: bytes, encrypted: bytes) -> _T:
    """Decrypt and decode a Sigma2/Sigma3 TBEData; any failure is a CaseError."""
    try:
        plain = case_keys.decrypt(key, nonce, encrypted)
    except case_keys.CaseCryptoError as e:
        raise CaseError(str(e)) from None
    return _decode(schema, plain)


def _validate_peer(
    fabric: FabricInfo, noc_tlv: bytes, icac_tlv: bytes | None, cert_time: int | None
) -> ChainInfo:
    """The peer's chain must lead to this fabric's root and name this fabric."""
    try:
        noc = certs.decode(noc_tlv)
        icac = certs.decode(icac_tlv) if icac_tlv is not None else None
        root = certs.decode(fabric.rcac)  # our trust anchor, checked when the fabric was added
        info = certs.validate_chain(noc, icac, root, now=cert_time, trusted_root=True)
    except CertificateError as e:
        raise CaseError(f"peer certificate chain rejected: {e}") from None
    if info.fabric_id != fabric.fabric_id:
        raise CaseError(f"peer NOC is for fabric 0x{info.fabric_id:016X}, not ours")
    return info


class CaseHandshake:
    """State and table dispatch shared by both roles."""

    _TABLE: dict[tuple[State, int], str] = {}

    def __init__(self, state: State, local_session_id: int, random: Random) -> None:
        if not 1 <= local_session_id <= 0xFFFF:
            raise ValueError("local session id must be 1..65535")
        self.state = state
        self.local_session_id = local_session_id
        self.result: CaseResult | None = None
        self._pending: CaseResult | None = None  # established once the closing status arrives
        self._random = random

    def receive(self, opcode: int, payload: bytes) -> list[Send]:
        """Feed one message of the handshake's exchange; returns what to send back.

        StatusReports go through :meth:`receive_status` once the message layer decoded them.
        """
        method = self._TABLE.get((self.state, opcode))
        if method is None:
            raise UnexpectedMessage(f"opcode 0x{opcode:02x} not expected in {self.state.value}")
        try:
            out: list[Send]
            out, next_state = getattr(self, method)(payload)
        except CaseError:
            self.state = State.FAILED
            raise
        self.state = next_state
        return out

    def fail(self) -> None:
        """Abandon the handshake (timeout, exchange closed)."""
        if self.state is not State.ESTABLISHED:
            self.state = State.FAILED

    @property
    def done(self) -> bool:
        """True once established or failed."""
        return self.state in (State.ESTABLISHED, State.FAILED)


class CaseResponder(CaseHandshake):
    """The node's side of one CASE handshake: finds the fabric, proves itself, checks the peer.

    ``cert_time`` is the Unix time against which certificates are checked (None: skip the
    validity-period check, for a node that does not know the time).
    """

    def __init__(
        self,
        fabrics: FabricTable,
        resumptions: ResumptionStore,
        local_session_id: int,
        *,
        cert_time: int | None,
        local_params: SessionParameters = DEFAULT_PARAMETERS,
        random: Random = secrets.token_bytes,
    ) -> None:
        super().__init__(State.WAIT_SIGMA1, local_session_id, random)
        self._fabrics = fabrics
        self._resumptions = resumptions
        self._cert_time = cert_time
        self._local_params = local_params
        self._sent: _Sigma2Sent | None = None

    _TABLE = {
        (State.WAIT_SIGMA1, Op.CASE_SIGMA1): "_on_sigma1",
        (State.WAIT_SIGMA3, Op.CASE_SIGMA3): "_on_sigma3",
    }

    def _on_sigma1(self, payload: bytes) -> tuple[list[Send], State]:
        s1 = _decode(Sigma1, payload)
        if (s1.resumption_id is None) != (s1.initiator_resume_mic is None):
            raise CaseError("Sigma1 carries half of the resumption fields")
        peer_params = peer_parameters(s1.initiator_session_params)
        if s1.resumption_id is not None and s1.initiator_resume_mic is not None:
            resumed = self._try_resume(s1, s1.resumption_id, s1.initiator_resume_mic, peer_params)
            if resumed is not None:
                return resumed
        fabric = self._fabrics.find_by_destination_id(s1.destination_id, s1.initiator_random)
        if fabric is None:
            raise CaseError(
                "destination id names none of our fabrics", SecureChannelCode.NO_SHARED_TRUST_ROOTS
            )
        eph = ec.generate_private_key(ec.SECP256R1())
        eph_pub = _public_bytes(eph)
        shared = _ecdh(eph, s1.initiator_eph_pub_key)
        responder_random = self._random(RANDOM_LENGTH)
        resumption_id = self._random(RESUMPTION_ID_LENGTH)
        tbe = TBEData2(
            noc=fabric.noc,
            icac=fabric.icac,
            signature=_sign_tbs(fabric, eph_pub, s1.initiator_eph_pub_key),
            resumption_id=resumption_id,
        ).encode()
        s2k = case_keys.sigma2_key(shared, fabric.ipk, responder_random, eph_pub, payload)
        sigma2 = Sigma2(
            responder_random=responder_random,
            responder_session_id=self.local_session_id,
            responder_eph_pub_key=eph_pub,
            encrypted2=case_keys.encrypt(s2k, case_keys.TBE2_NONCE, tbe),
            responder_session_params=SessionParametersTLV.local(self._local_params),
        ).encode()
        self._sent = _Sigma2Sent(
            fabric, payload, sigma2, shared, eph_pub, s1.initiator_eph_pub_key,
            s1.initiator_session_id, peer_params, resumption_id,
        )  # fmt: skip
        return [Send(Op.CASE_SIGMA2, sigma2)], State.WAIT_SIGMA3

    def _try_resume(
        self, s1: Sigma1, rid: bytes, mic: bytes, peer_params: SessionParameters
    ) -> tuple[list[Send], State] | None:
        record = self._resumptions.get(rid)
        if record is None:
            return None
        fabric = self._fabrics.get(record.fabric_index)
        expected = case_keys.resume_mic(record.shared_secret, s1.initiator_random, rid, sigma=1)
        if fabric is None or not hmac.compare_digest(expected, mic):
            return None  # 4.14.2.2.1: fall back to the full handshake
        new_rid = self._random(RESUMPTION_ID_LENGTH)
        sigma2_resume = Sigma2Resume(
            resumption_id=new_rid,
            sigma2_resume_mic=case_keys.resume_mic(
                record.shared_secret, s1.initiator_random, new_rid, sigma=2
            ),
            responder_session_id=self.local_session_id,
            responder_session_params=SessionParametersTLV.local(self._local_params),
        ).encode()
        keys = derive_session_keys(
            record.shared_secret, s1.initiator_random + rid, case_keys.RESUMPTION_KEYS_INFO
        )
        self._pending = CaseResult(
            local_session_id=self.local_session_id,
            peer_session_id=s1.initiator_session_id,
            keys=keys,
            is_initiator=False,
            fabric_index=fabric.fabric_index,
            local_node_id=fabric.node_id,
            peer_node_id=record.peer_node_id,
            peer_cats=record.peer_cats,
            peer_params=peer_params,
            resumed=True,
            resumption=ResumptionRecord(
                new_rid,
                record.shared_secret,
                fabric.fabric_index,
                record.peer_node_id,
                record.peer_cats,
            ),
        )
        return [Send(Op.CASE_SIGMA2_RESUME, sigma2_resume)], State.WAIT_RESUME_STATUS

    def _on_sigma3(self, payload: bytes) -> tuple[list[Send], State]:
        s = self._sent
        if s is None:
            raise CaseError("Sigma3 before Sigma2")
        fabric = s.fabric
        s3 = _decode(Sigma3, payload)
        s3k = case_keys.sigma3_key(s.shared, fabric.ipk, s.sigma1, s.sigma2)
        tbe = _open_tbe(TBEData3, s3k, case_keys.TBE3_NONCE, s3.encrypted3)
        info = _validate_peer(fabric, tbe.noc, tbe.icac, self._cert_time)
        _verify_tbs(info, tbe.noc, tbe.icac, tbe.signature, s.peer_eph_pub, s.eph_pub)
        keys = derive_session_keys(
            s.shared, case_keys.session_salt(fabric.ipk, s.sigma1, s.sigma2, payload)
        )
        record = ResumptionRecord(
            s.resumption_id, s.shared, fabric.fabric_index, info.node_id, info.cats
        )
        self.result = CaseResult(
            local_session_id=self.local_session_id,
            peer_session_id=s.peer_session_id,
            keys=keys,
            is_initiator=False,
            fabric_index=fabric.fabric_index,
            local_node_id=fabric.node_id,
            peer_node_id=info.node_id,
            peer_cats=info.cats,
            peer_params=s.peer_params,
            resumed=False,
            resumption=record,
        )
        self._resumptions.put(record)
        self._sent = None
        return [Send(Op.STATUS_REPORT, success_report().encode())], State.ESTABLISHED

    def receive_status(self, report: StatusReport) -> CaseResult | None:
        """A StatusReport from the initiator: success completes a resumption, else it failed."""
        if self.state is State.WAIT_RESUME_STATUS and report.is_success and self._pending:
            self.result = self._pending
            self._resumptions.put(self._pending.resumption)
            self.state = State.ESTABLISHED
            return self.result
        if self.done:
            raise UnexpectedMessage(f"status report in {self.state.value}")
        self.state = State.FAILED
        raise PeerReportedFailure(report)


class CaseInitiator(CaseHandshake):
    """A node opening a CASE session to ``peer_node_id`` on ``fabric``.

    With a ``resumption`` record for that peer it offers resumption first.
    """

    def __init__(
        self,
        fabric: FabricInfo,
        peer_node_id: int,
        local_session_id: int,
        *,
        cert_time: int | None,
        resumption: ResumptionRecord | None = None,
        local_params: SessionParameters | None = DEFAULT_PARAMETERS,
        random: Random = secrets.token_bytes,
    ) -> None:
        super().__init__(State.START, local_session_id, random)
        self.fabric = fabric
        self.peer_node_id = peer_node_id
        self._cert_time = cert_time
        self._resumption = resumption
        self._local_params = local_params
        self._eph = ec.generate_private_key(ec.SECP256R1())
        self._eph_pub = _public_bytes(self._eph)
        self._random_value = b""
        self._sigma1 = b""

    _TABLE = {
        (State.WAIT_SIGMA2, Op.CASE_SIGMA2): "_on_sigma2",
        (State.WAIT_SIGMA2, Op.CASE_SIGMA2_RESUME): "_on_sigma2_resume",
    }

    def start(self) -> Send:
        """The Sigma1 that opens the handshake."""
        if self.state is not State.START:
            raise UnexpectedMessage("handshake already started")
        self._random_value = self._random(RANDOM_LENGTH)
        rec = self._resumption
        params = self._local_params
        self._sigma1 = Sigma1(
            initiator_random=self._random_value,
            initiator_session_id=self.local_session_id,
            destination_id=self.fabric.destination_id(self._random_value, self.peer_node_id),
            initiator_eph_pub_key=self._eph_pub,
            initiator_session_params=None if params is None else SessionParametersTLV.local(params),
            resumption_id=None if rec is None else rec.resumption_id,
            initiator_resume_mic=None
            if rec is None
            else case_keys.resume_mic(
                rec.shared_secret, self._random_value, rec.resumption_id, sigma=1
            ),
        ).encode()
        self.state = State.WAIT_SIGMA2
        return Send(Op.CASE_SIGMA1, self._sigma1)

    def _on_sigma2(self, payload: bytes) -> tuple[list[Send], State]:
        fabric = self.fabric
        s2 = _decode(Sigma2, payload)
        shared = _ecdh(self._eph, s2.responder_eph_pub_key)
        s2k = case_keys.sigma2_key(
            shared, fabric.ipk, s2.responder_random, s2.responder_eph_pub_key, self._sigma1
        )
        tbe = _open_tbe(TBEData2, s2k, case_keys.TBE2_NONCE, s2.encrypted2)
        info = _validate_peer(fabric, tbe.noc, tbe.icac, self._cert_time)
        if info.node_id != self.peer_node_id:
            raise CaseError(
                f"responder is node 0x{info.node_id:016X}, not 0x{self.peer_node_id:016X}"
            )
        peer_eph_pub = s2.responder_eph_pub_key
        _verify_tbs(info, tbe.noc, tbe.icac, tbe.signature, peer_eph_pub, self._eph_pub)
        signature = _sign_tbs(fabric, self._eph_pub, peer_eph_pub)
        tbe3 = TBEData3(noc=fabric.noc, icac=fabric.icac, signature=signature)
        s3k = case_keys.sigma3_key(shared, fabric.ipk, self._sigma1, payload)
        sigma3 = Sigma3(
            encrypted3=case_keys.encrypt(s3k, case_keys.TBE3_NONCE, tbe3.encode())
        ).encode()
        keys = derive_session_keys(
            shared, case_keys.session_salt(fabric.ipk, self._sigma1, payload, sigma3)
        )
        self._pending = CaseResult(
            local_session_id=self.local_session_id,
            peer_session_id=s2.responder_session_id,
            keys=keys,
            is_initiator=True,
            fabric_index=fabric.fabric_index,
            local_node_id=fabric.node_id,
            peer_node_id=info.node_id,
            peer_cats=info.cats,
            peer_params=peer_parameters(s2.responder_session_params),
            resumed=False,
            resumption=ResumptionRecord(
                tbe.resumption_id, shared, fabric.fabric_index, info.node_id, info.cats
            ),
        )
        return [Send(Op.CASE_SIGMA3, sigma3)], State.WAIT_STATUS

    def _on_sigma2_resume(self, payload: bytes) -> tuple[list[Send], State]:
        rec = self._resumption
        if rec is None:
            raise CaseError("Sigma2_Resume answers a Sigma1 that offered no resumption")
        s2r = _decode(Sigma2Resume, payload)
        expected = case_keys.resume_mic(
            rec.shared_secret, self._random_value, s2r.resumption_id, sigma=2
        )
        if not hmac.compare_digest(expected, s2r.sigma2_resume_mic):
            raise CaseError("sigma2ResumeMIC does not verify")
        keys = derive_session_keys(
            rec.shared_secret,
            self._random_value + rec.resumption_id,
            case_keys.RESUMPTION_KEYS_INFO,
        )
        self.result = CaseResult(
            local_session_id=self.local_session_id,
            peer_session_id=s2r.responder_session_id,
            keys=keys,
            is_initiator=True,
            fabric_index=self.fabric.fabric_index,
            local_node_id=self.fabric.node_id,
            peer_node_id=rec.peer_node_id,
            peer_cats=rec.peer_cats,
            peer_params=peer_parameters(s2r.responder_session_params),
            resumed=True,
            resumption=ResumptionRecord(
                s2r.resumption_id,
                rec.shared_secret,
                rec.fabric_index,
                rec.peer_node_id,
                rec.peer_cats,
            ),
        )
        return [Send(Op.STATUS_REPORT, success_report().encode())], State.ESTABLISHED

    def receive_status(self, report: StatusReport) -> CaseResult:
        """The responder's verdict after Sigma3; on success the session is established."""
        if self.state is not State.WAIT_STATUS or not report.is_success:
            if self.done:
                raise UnexpectedMessage(f"status report in {self.state.value}")
            self.state = State.FAILED
            raise PeerReportedFailure(report)
        if (
            report.protocol_code != SecureChannelCode.SESSION_ESTABLISHMENT_SUCCESS
            or self._pending is None
        ):
            self.state = State.FAILED
            raise CaseError(f"unexpected success report {report.describe()}")
        self.result = self._pending
        self.state = State.ESTABLISHED
        return self.result
