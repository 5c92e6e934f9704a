"""Key derivations of operational discovery and CASE (spec 4.3.2.2, 4.14.2, 4.17.2).

Every label, salt and nonce below was checked against the spec and connectedhomeip
``src/protocols/secure_channel/CASESession.cpp`` / ``CASEDestinationId.cpp`` and
``src/crypto/CHIPCryptoPAL.cpp``; the tests replay their published vectors.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_LENGTH = 16  # CRYPTO_SYMMETRIC_KEY_LENGTH_BYTES
MIC_LENGTH = 16  # CRYPTO_AEAD_MIC_LENGTH_BYTES
RANDOM_LENGTH = 32  # 4.14.2.3 initiatorRandom / responderRandom
RESUMPTION_ID_LENGTH = 16  # 4.14.2.3 resumptionID

# 4.3.2.2 / 4.17.2.1
COMPRESSED_FABRIC_INFO = b"CompressedFabric"
GROUP_KEY_INFO = b"GroupKey v1.0"
# 4.14.2.3-4.14.2.6
SIGMA2_INFO = b"Sigma2"
SIGMA3_INFO = b"Sigma3"
SIGMA1_RESUME_INFO = b"Sigma1_Resume"
SIGMA2_RESUME_INFO = b"Sigma2_Resume"
SESSION_KEYS_INFO = b"SessionKeys"
RESUMPTION_KEYS_INFO = b"SessionResumptionKeys"
TBE2_NONCE = b"NCASE_Sigma2N"
TBE3_NONCE = b"NCASE_Sigma3N"
RESUME1_NONCE = b"NCASE_SigmaS1"
RESUME2_NONCE = b"NCASE_SigmaS2"


class CaseCryptoError(ValueError):
    """A MIC or encrypted payload that does not authenticate."""


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = KEY_LENGTH) -> bytes:
    """HKDF-SHA256 (RFC 5869), the Crypto_KDF of spec 3.8."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def sha256(*parts: bytes) -> bytes:
    """SHA-256 of the concatenated ``parts`` (Crypto_Hash, spec 3.3)."""
    return hashlib.sha256(b"".join(parts)).digest()


def compressed_fabric_id(root_public_key: bytes, fabric_id: int) -> bytes:
    """4.3.2.2: HKDF(root public key without its 0x04 prefix, fabric id BE64, 8 octets)."""
    if len(root_public_key) != 65 or root_public_key[0] != 0x04:
        raise ValueError("root public key must be an uncompressed P-256 point")
    return hkdf(root_public_key[1:], fabric_id.to_bytes(8, "big"), COMPRESSED_FABRIC_INFO, length=8)


def operational_group_key(epoch_key: bytes, compressed_fabric: bytes) -> bytes:
    """4.17.2.1: the operational group key; for the IPK epoch key this is the CASE IPK."""
    return hkdf(epoch_key, compressed_fabric, GROUP_KEY_INFO)


def destination_id(
    ipk: bytes, initiator_random: bytes, root_public_key: bytes, fabric_id: int, node_id: int
) -> bytes:
    """4.14.2.4: HMAC-SHA256(IPK, random ‖ root public key ‖ fabric id LE64 ‖ node id LE64)."""
    message = initiator_random + root_public_key + struct.pack("<QQ", fabric_id, node_id)
    return hmac.new(ipk, message, hashlib.sha256).digest()


def sigma2_key(
    shared_secret: bytes, ipk: bytes, responder_random: bytes, responder_eph: bytes, sigma1: bytes
) -> bytes:
    """S2K = HKDF(shared secret, IPK ‖ responderRandom ‖ responderEphPubKey ‖ H(Sigma1))."""
    return hkdf(shared_secret, ipk + responder_random + responder_eph + sha256(sigma1), SIGMA2_INFO)


def sigma3_key(shared_secret: bytes, ipk: bytes, sigma1: bytes, sigma2: bytes) -> bytes:
    """S3K = HKDF(shared secret, IPK ‖ H(Sigma1 ‖ Sigma2), "Sigma3")."""
    return hkdf(shared_secret, ipk + sha256(sigma1, sigma2), SIGMA3_INFO)


def session_salt(ipk: bytes, sigma1: bytes, sigma2: bytes, sigma3: bytes) -> bytes:
    """Salt of the session keys: IPK ‖ H(Sigma1 ‖ Sigma2 ‖ Sigma3) (4.14.2.6)."""
    return ipk + sha256(sigma1, sigma2, sigma3)


def resume_mic(
    shared_secret: bytes, initiator_random: bytes, resumption_id: bytes, *, sigma: int
) -> bytes:
    """initiatorResumeMIC (``sigma=1``) or sigma2ResumeMIC (``sigma=2``): AES-CCM over nothing.

    Key: HKDF(shared secret, initiatorRandom ‖ resumptionID, "Sigma1_Resume"/"Sigma2_Resume");
    nonce "NCASE_SigmaS1"/"NCASE_SigmaS2" (4.14.2.2.1, 4.14.2.5).
    """
    info, nonce = (
        (SIGMA1_RESUME_INFO, RESUME1_NONCE) if sigma == 1 else (SIGMA2_RESUME_INFO, RESUME2_NONCE)
    )
    key = hkdf(shared_secret, initiator_random + resumption_id, info)
    return AESCCM(key, tag_length=MIC_LENGTH).encrypt(nonce, b"", None)


def encrypt(key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    """AES-CCM-128 with a 16-octet MIC and no additional data (TBEData2 / TBEData3)."""
    return AESCCM(key, tag_length=MIC_LENGTH).encrypt(nonce, plaintext, None)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`encrypt`; :class:`CaseCryptoError` if it does not authenticate."""
    try:
        return AESCCM(key, tag_length=MIC_LENGTH).decrypt(nonce, ciphertext, None)
    except (InvalidTag, ValueError) as e:
        raise CaseCryptoError("encrypted CASE payload does not authenticate") from e
