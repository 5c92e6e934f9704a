"""SPAKE2+ over P-256 as Matter's PASE uses it (Matter Core spec 3.10, "Crypto_PAKE").

Matter fixed its SPAKE2+ at draft-bar-cfrg-spake2plus-01: the group, the M and N points, the
transcript TT (every field prefixed by its length as 8 little-endian bytes) and the points
X, Y, Z, V are those of RFC 9383, but the key schedule is the draft's:

    Ka || Ke  = SHA-256(TT)                       (16 bytes each)
    KcA || KcB = HKDF-SHA256(salt="", ikm=Ka, info="ConfirmationKeys", 32 bytes)
    cA = HMAC-SHA256(KcA, Y)      cB = HMAC-SHA256(KcB, X)

The prover (commissioner, PASE initiator) holds w0 and w1; the verifier (device, PASE
responder) holds only w0 and L = w1*G, the "PASE verifier" stored at manufacture.
w0 and w1 come from PBKDF2-SHA256 over the passcode (3.9, "Crypto_PBKDF"; 3.10).

Point arithmetic uses the pure-Python ``ecdsa`` package; hashes and KDFs use
``cryptography``. The fixed points G, M and N carry precomputed tables.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from ecdsa import NIST256p
from ecdsa.ellipticcurve import PointJacobi
from ecdsa.errors import MalformedPointError

_CURVE = NIST256p.curve
_G: PointJacobi = NIST256p.generator
#: Order of the P-256 group (the "p" of RFC 9383's notation).
ORDER: int = NIST256p.order

# RFC 9383 section 4 (and draft-01): the P-256 M and N points, compressed.
M_COMPRESSED = bytes.fromhex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f")
N_COMPRESSED = bytes.fromhex("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49")

POINT_LEN = 65  # uncompressed SEC1 encoding
SCALAR_LEN = 32
#: Length of each of w0s and w1s: ceil(log2(order)) / 8 + 8 (spec 3.10, CRYPTO_W_SIZE_BYTES).
WS_LEN = SCALAR_LEN + 8
#: Serialized PASE verifier: w0 (32) || L (65), as connectedhomeip stores it.
VERIFIER_LEN = SCALAR_LEN + POINT_LEN

# Spec 4.14.1.1 / 5.1.1.6: PBKDF parameter limits.
PBKDF_MIN_ITERATIONS = 1000
PBKDF_MAX_ITERATIONS = 100000
PBKDF_MIN_SALT_LEN = 16
PBKDF_MAX_SALT_LEN = 32

# Spec 5.1.7.1: a passcode is 1..99999998 and none of these trivially guessable values.
PASSCODE_MAX = 99999998
INVALID_PASSCODES = frozenset(
    [11111111 * d for d in range(10)] + [12345678, 87654321]
)

#: Spec 4.14.1.3: prefix of the PAKE context hash.
CONTEXT_PREFIX = b"CHIP PAKE V1 Commissioning"
_CONFIRMATION_INFO = b"ConfirmationKeys"  # spec 3.10: HKDF info of KcA || KcB


class Spake2pError(ValueError):
    """A SPAKE2+ input is invalid or the peer's confirmation does not verify."""


class InvalidPasscode(Spake2pError):
    """The passcode is out of range or one the spec forbids."""


def _precomputed(point: PointJacobi) -> PointJacobi:
    x, y = point.x(), point.y()
    return PointJacobi(_CURVE, x, y, 1, ORDER, generator=True)


def _decode_point(data: bytes) -> PointJacobi:
    """An uncompressed or compressed point on P-256 that is not the identity."""
    try:
        point = PointJacobi.from_bytes(
            _CURVE, data, validate_encoding=True,
            valid_encodings=("uncompressed", "compressed"), order=ORDER,
        )
    except (MalformedPointError, ValueError, AssertionError) as e:
        raise Spake2pError(f"not a P-256 point: {e}") from None
    if not isinstance(point, PointJacobi) or not point:
        raise Spake2pError("not a P-256 point: identity")
    # ecdsa checks the curve equation only for some encodings: check it always (invalid-curve
    # points would leak w0). P-256 has cofactor 1, so on the curve means in the group.
    if not _CURVE.contains_point(point.x(), point.y()):
        raise Spake2pError("not a P-256 point: off the curve")
    return point


@functools.lru_cache(maxsize=8)
def _verifier_point(L: bytes) -> PointJacobi:
    """A device's L with a precomputed table: every handshake multiplies it (V = y*L)."""
    return _precomputed(_decode_point(L))


_M = _precomputed(_decode_point(M_COMPRESSED))
_N = _precomputed(_decode_point(N_COMPRESSED))


def encode_point(point: PointJacobi) -> bytes:
    """Uncompressed SEC1 encoding (0x04 || x || y)."""
    if not point:
        raise Spake2pError("point at infinity")
    return bytes(point.to_bytes("uncompressed"))


M_POINT: bytes = encode_point(_M)
N_POINT: bytes = encode_point(_N)


def check_passcode(passcode: int) -> None:
    """Raise InvalidPasscode unless the passcode is one a device may use (spec 5.1.7.1)."""
    if not 1 <= passcode <= PASSCODE_MAX:
        raise InvalidPasscode(f"passcode must be 1..{PASSCODE_MAX}, got {passcode}")
    if passcode in INVALID_PASSCODES:
        raise InvalidPasscode(f"passcode {passcode:08d} is not allowed (spec 5.1.7.1)")


def check_pbkdf_parameters(salt: bytes, iterations: int) -> None:
    """Raise Spake2pError unless salt and iteration count are within the spec's limits."""
    if not PBKDF_MIN_SALT_LEN <= len(salt) <= PBKDF_MAX_SALT_LEN:
        raise Spake2pError(
            f"PBKDF salt must be {PBKDF_MIN_SALT_LEN}..{PBKDF_MAX_SALT_LEN} bytes, got {len(salt)}")
    if not PBKDF_MIN_ITERATIONS <= iterations <= PBKDF_MAX_ITERATIONS:
        raise Spake2pError(
            f"PBKDF iterations must be {PBKDF_MIN_ITERATIONS}..{PBKDF_MAX_ITERATIONS}, "
            f"got {iterations}")


def compute_w0_w1(passcode: int, salt: bytes, iterations: int) -> tuple[int, int]:
    """w0 and w1 from PBKDF2-SHA256(passcode as 4 LE bytes, salt, iterations), each mod ORDER.

    The passcode is range-checked only (1..2**27-1) so that controllers can still derive
    keys for passcodes a device must refuse; use ``check_passcode`` on the device side.
    """
    if not 0 <= passcode < 1 << 27:
        raise InvalidPasscode(f"passcode must fit 27 bits, got {passcode}")
    check_pbkdf_parameters(salt, iterations)
    ws = PBKDF2HMAC(hashes.SHA256(), 2 * WS_LEN, salt, iterations).derive(
        struct.pack("<I", passcode))
    w0 = int.from_bytes(ws[:WS_LEN], "big") % ORDER
    w1 = int.from_bytes(ws[WS_LEN:], "big") % ORDER
    return w0, w1


@dataclass(frozen=True)
class PaseVerifier:
    """What a device stores instead of its passcode: w0 and L = w1*G."""

    w0: int
    L: bytes

    @classmethod
    def from_passcode(cls, passcode: int, salt: bytes, iterations: int) -> PaseVerifier:
        """Derive the verifier; refuses passcodes a device may not use (spec 5.1.7.1)."""
        check_passcode(passcode)
        w0, w1 = compute_w0_w1(passcode, salt, iterations)
        return cls(w0, encode_point(_G * w1))

    def serialize(self) -> bytes:
        """w0 (32 bytes, big-endian) || L (65 bytes): connectedhomeip's serialized verifier."""
        return self.w0.to_bytes(SCALAR_LEN, "big") + self.L

    @classmethod
    def deserialize(cls, data: bytes) -> PaseVerifier:
        """The verifier from :meth:`serialize`'s form; Spake2pError when malformed."""
        if len(data) != VERIFIER_LEN:
            raise Spake2pError(f"PASE verifier must be {VERIFIER_LEN} bytes, got {len(data)}")
        w0 = int.from_bytes(data[:SCALAR_LEN], "big")
        if not 0 < w0 < ORDER:
            raise Spake2pError("PASE verifier w0 out of range")
        encode_point(_decode_point(data[SCALAR_LEN:]))
        return cls(w0, bytes(data[SCALAR_LEN:]))


def pake_context(pbkdf_param_request: bytes, pbkdf_param_response: bytes) -> bytes:
    """SHA-256("CHIP PAKE V1 Commissioning" || PBKDFParamRequest || PBKDFParamResponse).

    The two arguments are the TLV payloads exactly as sent (spec 4.14.1.3).
    """
    return hashlib.sha256(CONTEXT_PREFIX + pbkdf_param_request + pbkdf_param_response).digest()


def transcript(context: bytes, id_prover: bytes, id_verifier: bytes, x_point: bytes,
               y_point: bytes, z_point: bytes, v_point: bytes, w0: int) -> bytes:
    """TT: each of Context, A, B, M, N, X, Y, Z, V, w0 preceded by its 8-byte LE length."""
    parts = (context, id_prover, id_verifier, M_POINT, N_POINT, x_point, y_point, z_point,
             v_point, w0.to_bytes(SCALAR_LEN, "big"))
    return b"".join(struct.pack("<Q", len(p)) + p for p in parts)


@dataclass(frozen=True)
class Keys:
    """Everything the key schedule yields; PASE uses Ke for the session keys."""

    ka: bytes
    ke: bytes
    kca: bytes
    kcb: bytes


def key_schedule(tt: bytes) -> Keys:
    """The draft-01 key schedule Matter uses (see module docstring)."""
    digest = hashlib.sha256(tt).digest()
    ka, ke = digest[:16], digest[16:]
    kc = HKDF(hashes.SHA256(), 32, None, _CONFIRMATION_INFO).derive(ka)
    return Keys(ka=ka, ke=ke, kca=kc[:16], kcb=kc[16:])


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _random_scalar() -> int:
    return secrets.randbelow(ORDER - 1) + 1


def _scalar(value: int, name: str) -> int:
    if not 0 < value < ORDER:
        raise Spake2pError(f"{name} out of range")
    return value


class Prover:
    """The commissioner's side: sends X, receives Y, proves with cA, checks cB."""

    def __init__(self, context: bytes, w0: int, w1: int, *, id_prover: bytes = b"",
                 id_verifier: bytes = b"", x: int | None = None) -> None:
        self._context = context
        self._ids = (id_prover, id_verifier)
        self._w0 = _scalar(w0, "w0")
        self._w1 = _scalar(w1, "w1")
        self._x = _scalar(x, "x") if x is not None else _random_scalar()
        # X = x*G + w0*M
        self.share: bytes = encode_point(_G * self._x + _M * self._w0)
        self.keys: Keys | None = None
        self._y_share = b""

    def finish(self, y_share: bytes) -> bytes:
        """Take the verifier's Y; return cA. Z = x*(Y - w0*N), V = w1*(Y - w0*N)."""
        y = _decode_point(y_share)
        base = y + (-(_N * self._w0))
        z, v = base * self._x, base * self._w1
        tt = transcript(self._context, *self._ids, self.share, encode_point(y),
                        encode_point(z), encode_point(v), self._w0)
        self.keys = key_schedule(tt)
        self._y_share = encode_point(y)
        return _mac(self.keys.kca, self._y_share)

    def verify(self, cb: bytes) -> bytes:
        """Check the verifier's cB = HMAC(KcB, X); return Ke."""
        if self.keys is None:
            raise Spake2pError("finish() first")
        if not hmac.compare_digest(cb, _mac(self.keys.kcb, self.share)):
            raise Spake2pError("verifier's confirmation cB does not match")
        return self.keys.ke


class Verifier:
    """The device's side: receives X, sends Y and cB, checks cA."""

    def __init__(self, context: bytes, w0: int, L: bytes, *, id_prover: bytes = b"",
                 id_verifier: bytes = b"", y: int | None = None) -> None:
        self._context = context
        self._ids = (id_prover, id_verifier)
        self._w0 = _scalar(w0, "w0")
        self._L = _verifier_point(bytes(L))
        self._y = _scalar(y, "y") if y is not None else _random_scalar()
        # Y = y*G + w0*N
        self.share: bytes = encode_point(_G * self._y + _N * self._w0)
        self.keys: Keys | None = None

    def respond(self, x_share: bytes) -> bytes:
        """Take the prover's X; return cB. Z = y*(X - w0*M), V = y*L."""
        x = _decode_point(x_share)
        z = (x + (-(_M * self._w0))) * self._y
        v = self._L * self._y
        x_bytes = encode_point(x)
        tt = transcript(self._context, *self._ids, x_bytes, self.share,
                        encode_point(z), encode_point(v), self._w0)
        self.keys = key_schedule(tt)
        return _mac(self.keys.kcb, x_bytes)

    def verify(self, ca: bytes) -> bytes:
        """Check the prover's cA = HMAC(KcA, Y); return Ke."""
        if self.keys is None:
            raise Spake2pError("respond() first")
        if not hmac.compare_digest(ca, _mac(self.keys.kca, self.share)):
            raise Spake2pError("prover's confirmation cA does not match")
        return self.keys.ke
