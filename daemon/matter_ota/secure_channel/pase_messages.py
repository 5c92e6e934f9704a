"""PASE message payloads (Matter Core spec 4.14.1), as TLV schemas.

Each is an anonymous TLV structure sent as a Secure Channel message:
PBKDFParamRequest 0x20, PBKDFParamResponse 0x21, Pake1 0x22, Pake2 0x23, Pake3 0x24.
"""

from __future__ import annotations

from dataclasses import dataclass

from matter_ota import tlv
from matter_ota.crypto import spake2p
from matter_ota.secure_channel.session_params import SessionParametersTLV

RANDOM_LEN = 32  # 4.14.1.2: initiatorRandom / responderRandom are 32 octets
HMAC_LEN = 32  # cA / cB: CRYPTO_HASH_LEN_BYTES
DEFAULT_PASSCODE_ID = 0  # 4.14.1.2: 0 is the passcode of the commissioning window


@dataclass(kw_only=True)
class PBKDFParameters(tlv.Struct):
    """Crypto_PBKDFParameterSet (4.14.1.2)."""

    iterations: int = tlv.field(1, tlv.U32)
    salt: bytes = tlv.field(2, tlv.Bytes(min_len=spake2p.PBKDF_MIN_SALT_LEN,
                                          max_len=spake2p.PBKDF_MAX_SALT_LEN))


@dataclass(kw_only=True)
class PBKDFParamRequest(tlv.Struct):
    """pbkdfparamreq-struct (4.14.1.2)."""

    initiator_random: bytes = tlv.field(1, tlv.Bytes(min_len=RANDOM_LEN, max_len=RANDOM_LEN))
    initiator_session_id: int = tlv.field(2, tlv.U16)
    passcode_id: int = tlv.field(3, tlv.U16)
    has_pbkdf_parameters: bool = tlv.field(4, tlv.Bool)
    initiator_session_params: SessionParametersTLV | None = tlv.field(
        5, SessionParametersTLV, optional=True)


@dataclass(kw_only=True)
class PBKDFParamResponse(tlv.Struct):
    """pbkdfparamresp-struct (4.14.1.2); pbkdf_parameters absent iff the initiator has them."""

    initiator_random: bytes = tlv.field(1, tlv.Bytes(min_len=RANDOM_LEN, max_len=RANDOM_LEN))
    responder_random: bytes = tlv.field(2, tlv.Bytes(min_len=RANDOM_LEN, max_len=RANDOM_LEN))
    responder_session_id: int = tlv.field(3, tlv.U16)
    pbkdf_parameters: PBKDFParameters | None = tlv.field(4, PBKDFParameters, optional=True)
    responder_session_params: SessionParametersTLV | None = tlv.field(
        5, SessionParametersTLV, optional=True)


_POINT = tlv.Bytes(min_len=spake2p.POINT_LEN, max_len=spake2p.POINT_LEN)
_HMAC = tlv.Bytes(min_len=HMAC_LEN, max_len=HMAC_LEN)


@dataclass(kw_only=True)
class Pake1(tlv.Struct):
    """pake-1-struct (4.14.1.2): the prover's share X."""

    pA: bytes = tlv.field(1, _POINT)


@dataclass(kw_only=True)
class Pake2(tlv.Struct):
    """pake-2-struct: the verifier's share Y and its confirmation cB."""

    pB: bytes = tlv.field(1, _POINT)
    cB: bytes = tlv.field(2, _HMAC)


@dataclass(kw_only=True)
class Pake3(tlv.Struct):
    """pake-3-struct: the prover's confirmation cA."""

    cA: bytes = tlv.field(1, _HMAC)
