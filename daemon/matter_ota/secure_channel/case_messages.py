"""CASE message payloads (spec 4.14.2.3), as TLV schemas.

Sigma1 0x30, Sigma2 0x31, Sigma3 0x32 and Sigma2_Resume 0x33 are anonymous TLV structures; the
encrypted parts carry TBEData2 / TBEData3, and the signatures cover TBSData2 / TBSData3 (one
schema, :class:`TBSData`, as their tags coincide). Tags as in connectedhomeip CASESession.cpp.

These structures hold only octet strings, unsigned integers and the session-parameter struct
(unsigned integers only). Both directions take a short path for exactly that shape, as a handshake
encodes nine and decodes five of them: :func:`encode_flat` writes them directly and
:func:`decode_flat` reads them, checking each field against its schema declaration; any other
shape (unknown member types, other tag forms, duplicates) goes through the generic codec and
schema. The tests check both paths agree byte for byte and error for error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

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


class Encoded(bytes):
    """An element already in TLV form (with its tag), placed by :func:`encode_flat` as is."""


def encode_flat(fields: Iterable[tuple[int, bytes | int | None]]) -> bytes:
    """An anonymous TLV structure of context-tagged octet strings and unsigned integers.

    Shortest encodings as :func:`matter_ota.tlv.encode` writes them (A.7, A.8); None fields are
    left out; :class:`Encoded` values go in verbatim.
    """
    parts = [b"\x15"]
    for tag, v in fields:
        if v is None:
            continue
        if type(v) is bytes:
            n = len(v)
            parts.append(
                bytes((0x30, tag, n)) if n <= 0xFF else bytes((0x31, tag, n & 0xFF, n >> 8))
            )
            parts.append(v)
        elif isinstance(v, bytes):  # Encoded
            parts.append(v)
        elif v <= 0xFF:
            parts.append(bytes((0x24, tag, v)))
        elif v <= 0xFFFF:
            parts.append(bytes((0x25, tag, v & 0xFF, v >> 8)))
        elif v <= 0xFFFF_FFFF:
            parts.append(bytes((0x26, tag)) + v.to_bytes(4, "little"))
        else:
            parts.append(bytes((0x27, tag)) + v.to_bytes(8, "little"))
    parts.append(b"\x18")
    return b"".join(parts)


_UINT_SIZE = {0x24: 1, 0x25: 2, 0x26: 4, 0x27: 8}  # context tag, unsigned integer of n octets


def _scan(data: bytes, pos: int, nested: bool) -> tuple[dict[int, Any], int] | None:
    """Members of the structure whose first member starts at ``pos``, and where it ends.

    Only context-tagged unsigned integers, octet strings (1- or 2-octet length) and, at the top
    level, structures of unsigned integers; None for anything else or a duplicate tag.
    """
    members: dict[int, Any] = {}
    end = len(data)
    while pos < end:
        ctl = data[pos]
        if ctl == 0x18:
            return members, pos + 1
        if pos + 2 > end:
            return None
        tag = data[pos + 1]
        pos += 2
        size = _UINT_SIZE.get(ctl)
        if size is not None:
            if pos + size > end:
                return None
            value: Any = tlv.uint(int.from_bytes(data[pos : pos + size], "little"))
            pos += size
        elif ctl in (0x30, 0x31) and not nested:
            width = 1 if ctl == 0x30 else 2
            if pos + width > end:
                return None
            n = int.from_bytes(data[pos : pos + width], "little")
            pos += width
            if pos + n > end:
                return None
            value = data[pos : pos + n]
            pos += n
        elif ctl == 0x35 and not nested:
            inner = _scan(data, pos, True)
            if inner is None:
                return None
            value, pos = inner
        else:
            return None
        if tag in members:
            return None
        members[tag] = value
    return None


_S = TypeVar("_S", bound=tlv.Struct)
_UINTS = {id(t): t for t in (tlv.U8, tlv.U16, tlv.U32, tlv.U64)}
# per schema: (attribute, tag, kind, min length, max length or int maximum, optional), or None
_LAYOUTS: dict[type[tlv.Struct], list[tuple[str, int, str, int, int, bool]] | None] = {}


def _layout(cls: type[tlv.Struct]) -> list[tuple[str, int, str, int, int, bool]] | None:
    """The schema's fields in a form :func:`decode_flat` checks quickly (None: not flat)."""
    if cls in _LAYOUTS:
        return _LAYOUTS[cls]
    layout: list[tuple[str, int, str, int, int, bool]] | None = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        spec = f.metadata.get("tlv")
        kind = getattr(spec, "type", None)
        if layout is None or spec is None or not isinstance(spec.tag, int) or spec.nullable:
            layout = None
        elif isinstance(kind, tlv.Bytes):
            top = kind.max_len if kind.max_len is not None else 0xFFFF
            layout.append((f.name, spec.tag, "bytes", kind.min_len, top, spec.optional))
        elif id(kind) in _UINTS:
            layout.append((f.name, spec.tag, "uint", 0, getattr(kind, "hi", 0), spec.optional))
        elif getattr(kind, "cls", None) is SessionParametersTLV:
            layout.append((f.name, spec.tag, "params", 0, 0, spec.optional))
        else:
            layout = None
    _LAYOUTS[cls] = layout
    return layout


_PARAMS_DECODED: dict[tuple[tuple[int, int], ...], SessionParametersTLV] = {}


def decode_flat(cls: type[_S], data: bytes) -> _S:
    """``cls.decode(data)``, faster for the flat shapes CASE messages have (see module doc).

    Whatever the short path does not accept outright goes to ``cls.decode``, which then
    accepts it or raises the codec's error, so both paths answer alike.
    """
    scanned = _scan(data, 1, False) if data[:1] == b"\x15" else None
    layout = _layout(cls)
    if scanned is None or scanned[1] != len(data) or layout is None:
        return cls.decode(data)
    members = scanned[0]
    kwargs: dict[str, Any] = {}
    for attr, tag, kind, lo, hi, optional in layout:
        v = members.get(tag)
        if v is None:
            if optional:
                continue
            return cls.decode(data)
        if kind == "bytes":
            if type(v) is not bytes or not lo <= len(v) <= hi:
                return cls.decode(data)
        elif kind == "uint":
            if type(v) is not tlv.uint or v > hi:
                return cls.decode(data)
        else:
            if type(v) is not dict:
                return cls.decode(data)
            key = tuple(v.items())
            params = _PARAMS_DECODED.get(key)
            if params is None:
                params = SessionParametersTLV.from_value(v)
                if len(_PARAMS_DECODED) < 64:
                    _PARAMS_DECODED[key] = params
            v = params
        kwargs[attr] = v
    return cls(**kwargs)


_PARAMS_CACHE: dict[tuple[object, ...], Encoded] = {}


def _params_element(params: SessionParametersTLV | None, tag: int) -> Encoded | None:
    """The session-parameter struct as a tagged element (a node announces the same few)."""
    if params is None:
        return None
    key = (tag, *vars(params).values())
    cached = _PARAMS_CACHE.get(key)
    if cached is None:
        cached = Encoded(tlv.encode(params.to_value(), tag))
        if len(_PARAMS_CACHE) < 64:
            _PARAMS_CACHE[key] = cached
    return cached


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

    def encode(self, tag: tlv.Tag | None = None) -> bytes:
        if tag is not None:
            return super().encode(tag)
        return encode_flat(
            [
                (1, self.initiator_random),
                (2, self.initiator_session_id),
                (3, self.destination_id),
                (4, self.initiator_eph_pub_key),
                (5, _params_element(self.initiator_session_params, 5)),
                (6, self.resumption_id),
                (7, self.initiator_resume_mic),
            ]
        )


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

    def encode(self, tag: tlv.Tag | None = None) -> bytes:
        if tag is not None:
            return super().encode(tag)
        return encode_flat(
            [
                (1, self.responder_random),
                (2, self.responder_session_id),
                (3, self.responder_eph_pub_key),
                (4, self.encrypted2),
                (5, _params_element(self.responder_session_params, 5)),
            ]
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

    def encode(self, tag: tlv.Tag | None = None) -> bytes:
        if tag is not None:
            return super().encode(tag)
        return encode_flat(
            [
                (1, self.resumption_id),
                (2, self.sigma2_resume_mic),
                (3, self.responder_session_id),
                (4, _params_element(self.responder_session_params, 4)),
            ]
        )


@dataclass(kw_only=True)
class Sigma3(tlv.Struct):
    """sigma-3-struct."""

    encrypted3: bytes = tlv.field(1, tlv.Bytes(min_len=MIC_LENGTH + 1, max_len=1200))

    def encode(self, tag: tlv.Tag | None = None) -> bytes:
        if tag is not None:
            return super().encode(tag)
        return encode_flat([(1, self.encrypted3)])


@dataclass(kw_only=True)
class TBEData2(tlv.Struct):
    """sigma-2-tbedata: the responder's credentials, signature and the new resumption id."""

    noc: bytes = tlv.field(1, _CERT)
    icac: bytes | None = tlv.field(2, _CERT, optional=True)
    signature: bytes = tlv.field(3, _exact(SIGNATURE_LENGTH))
    resumption_id: bytes = tlv.field(4, _exact(RESUMPTION_ID_LENGTH))

    def encode(self, tag: tlv.Tag | None = None) -> bytes:
        if tag is not None:
            return super().encode(tag)
        return encode_flat(
            [(1, self.noc), (2, self.icac), (3, self.signature), (4, self.resumption_id)]
        )


@dataclass(kw_only=True)
class TBEData3(tlv.Struct):
    """sigma-3-tbedata: the initiator's credentials and signature."""

    noc: bytes = tlv.field(1, _CERT)
    icac: bytes | None = tlv.field(2, _CERT, optional=True)
    signature: bytes = tlv.field(3, _exact(SIGNATURE_LENGTH))

    def encode(self, tag: tlv.Tag | None = None) -> bytes:
        if tag is not None:
            return super().encode(tag)
        return encode_flat([(1, self.noc), (2, self.icac), (3, self.signature)])


@dataclass(kw_only=True)
class TBSData(tlv.Struct):
    """sigma-2-tbsdata / sigma-3-tbsdata: what the sender signs (sender's ephemeral key first)."""

    noc: bytes = tlv.field(1, _CERT)
    icac: bytes | None = tlv.field(2, _CERT, optional=True)
    sender_eph_pub_key: bytes = tlv.field(3, _exact(PUBLIC_KEY_LENGTH))
    receiver_eph_pub_key: bytes = tlv.field(4, _exact(PUBLIC_KEY_LENGTH))

    def encode(self, tag: tlv.Tag | None = None) -> bytes:
        if tag is not None:
            return super().encode(tag)
        return encode_flat(
            [
                (1, self.noc),
                (2, self.icac),
                (3, self.sender_eph_pub_key),
                (4, self.receiver_eph_pub_key),
            ]
        )
