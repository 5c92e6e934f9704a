"""CASE message payloads (spec 4.14.2.3), as TLV schemas.

Sigma1 0x30, Sigma2 0x31, Sigma3 0x32 and Sigma2_Resume 0x33 are anonymous TLV structures; the
encrypted parts carry TBEData2 / TBEData3, and the signatures cover TBSData2 / TBSData3 (one
schema, :class:`TBSData`, as their tags coincide). Tags as in connectedhomeip CASESession.cpp.
"""

from __future__ import annotations

from dataclasses import dataclass

from matter_ota import tlv
from matter_ota.crypto.case_keys import MIC_LENGTH, RANDOM_LENGTH, RESUMPTION_ID_LENGTH
from matter_ota.secure_channel.session_params import SessionParametersTLV

PUBLIC_KEY_LENGTH = 65  # uncompressed P-256 point
SIGNATURE_LENGTH = 64  # raw r || s
DESTINATION_ID_LENGTH = 32  # HMAC-SHA256
MAX_CERT_LENGTH = 400  # 6.1.3: Matter TLV certificates are at most 400 octets


def _exact(n: int) -> tlv.Bytes:
    return tlv.Bytes(min_len=n, max_len=n)


_CERT = tlv.Bytes(min_len=1, max_len=MAX_CERT_LENGTH)


@dataclass(kw_only=True)
class Sigma1(tlv.Struct):
    """sigma-1-struct; resumption_id and initiator_resume_mic come together or not at all."""

    initiator_random: bytes = tlv.field(1, _exact(RANDOM_LENGTH))
    initiator_session_id: int = tlv.field(2, tlv.U16)
    destination_id: bytes = tlv.field(3, _exact(DESTINATION_ID_LENGTH))
    initiator_eph_pub_key: bytes = tlv.field(4, _exact(PUBLIC_KEY_LENGTH))
    initiator_session_params: SessionParametersTLV | None = tlv.field(
        5, SessionParametersTLV, optional=True
    )
    resumption_id: bytes | None = tlv.field(6, _exact(RESUMPTION_ID_LENGTH), optional=True)
    initiator_resume_mic: bytes | None = tlv.field(7, _exact(MIC_LENGTH), optional=True)


@dataclass(kw_only=True)
class Sigma2(tlv.Struct):
    """sigma-2-struct."""

    responder_random: bytes = tlv.field(1, _exact(RANDOM_LENGTH))
    responder_session_id: int = tlv.field(2, tlv.U16)
    responder_eph_pub_key: bytes = tlv.field(3, _exact(PUBLIC_KEY_LENGTH))
    encrypted2: bytes = tlv.field(4, tlv.Bytes(min_len=MIC_LENGTH + 1, max_len=1200))
    responder_session_params: SessionParametersTLV | None = tlv.field(
        5, SessionParametersTLV, optional=True
    )


@dataclass(kw_only=True)
class Sigma2Resume(tlv.Struct):
    """sigma-2-resume-struct."""

    resumption_id: bytes = tlv.field(1, _exact(RESUMPTION_ID_LENGTH))
    sigma2_resume_mic: bytes = tlv.field(2, _exact(MIC_LENGTH))
    responder_session_id: int = tlv.field(3, tlv.U16)
    responder_session_params: SessionParametersTLV | None = tlv.field(
        4, SessionParametersTLV, optional=True
    )


@dataclass(kw_only=True)
class Sigma3(tlv.Struct):
    """sigma-3-struct."""

    encrypted3: bytes = tlv.field(1, tlv.Bytes(min_len=MIC_LENGTH + 1, max_len=1200))


@dataclass(kw_only=True)
class TBEData2(tlv.Struct):
    """sigma-2-tbedata: the responder's credentials, signature and the new resumption id."""

    noc: bytes = tlv.field(1, _CERT)
    icac: bytes | None = tlv.field(2, _CERT, optional=True)
    signature: bytes = tlv.field(3, _exact(SIGNATURE_LENGTH))
    resumption_id: bytes = tlv.field(4, _exact(RESUMPTION_ID_LENGTH))


@dataclass(kw_only=True)
class TBEData3(tlv.Struct):
    """sigma-3-tbedata: the initiator's credentials and signature."""

    noc: bytes = tlv.field(1, _CERT)
    icac: bytes | None = tlv.field(2, _CERT, optional=True)
    signature: bytes = tlv.field(3, _exact(SIGNATURE_LENGTH))


@dataclass(kw_only=True)
class TBSData(tlv.Struct):
    """sigma-2-tbsdata / sigma-3-tbsdata: what the sender signs (sender's ephemeral key first)."""

    noc: bytes = tlv.field(1, _CERT)
    icac: bytes | None = tlv.field(2, _CERT, optional=True)
    sender_eph_pub_key: bytes = tlv.field(3, _exact(PUBLIC_KEY_LENGTH))
    receiver_eph_pub_key: bytes = tlv.field(4, _exact(PUBLIC_KEY_LENGTH))
