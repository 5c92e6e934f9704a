"""Message encryption, Matter Core spec 4.7, and session key derivation (4.13.2.6 / 4.14).

Secured messages use AES-CCM-128 with a 16-byte MIC. The 13-byte nonce is security flags (u8) ‖
message counter (u32 LE) ‖ source node id (u64 LE) (4.7.2.1); the additional data is the whole
message header as sent, message extensions included (4.7.2). The source node id is the sender's
operational node id on CASE sessions and 0 (unspecified) on PASE sessions.

Privacy obfuscation of the header (4.9, P flag) is not implemented: we never set the flag and
drop messages that carry it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from matter_ota.messaging.errors import MessageError

MIC_LENGTH = 16  # 4.7.2 CRYPTO_AEAD_MIC_LENGTH_BYTES
NONCE_LENGTH = 13  # 4.7.2 CRYPTO_AEAD_NONCE_LENGTH_BYTES
KEY_LENGTH = 16  # 3.6 CRYPTO_SYMMETRIC_KEY_LENGTH_BYTES
SESSION_KEYS_INFO = b"SessionKeys"  # 4.13.2.6 (PASE), 4.14.2.6 (CASE)

#: ``build_nonce(security_flags, counter, node_id)``: the AES-CCM nonce of a message (4.7.2.1).
#: The bound ``pack`` itself, not a wrapper: it runs twice per message.
build_nonce = struct.Struct("<BIQ").pack


class MessageCipher:
    """AES-CCM-128 for one direction of a session; holds the expanded key.

    ``seal(nonce, plaintext, header)`` returns the ciphertext followed by the MIC: it is the
    AEAD's own ``encrypt`` (no Python frame in between; it runs once per message sent).
    """

    __slots__ = ("_aead", "seal")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_LENGTH:
            raise ValueError(f"session keys are {KEY_LENGTH} bytes, not {len(key)}")
        self._aead = AESCCM(key, tag_length=MIC_LENGTH)
        self.seal: Callable[[bytes, bytes, bytes], bytes] = self._aead.encrypt

    def open(self, nonce: bytes, ciphertext: bytes | memoryview, header: bytes) -> bytes:
        """The plaintext; :class:`MessageError` if the MIC does not verify."""
        if len(ciphertext) < MIC_LENGTH:
            raise MessageError("secured message shorter than its MIC")
        try:
            return self._aead.decrypt(nonce, ciphertext, header)
        except InvalidTag:
            raise MessageError("message integrity check failed") from None


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The keys of one secure session (4.13.2.6): initiator-to-responder, back, and the
    attestation challenge used during commissioning."""

    i2r_key: bytes
    r2i_key: bytes
    attestation_challenge: bytes


def derive_session_keys(
    shared_secret: bytes, salt: bytes, info: bytes = SESSION_KEYS_INFO
) -> SessionKeys:
    """``I2RKey ‖ R2IKey ‖ AttestationChallenge = HKDF-SHA256(secret, salt, info, 48)``.

    PASE passes ``Ke`` and an empty salt; CASE passes the shared secret with
    ``IPK ‖ SHA256(Sigma1 ‖ Sigma2 ‖ Sigma3)`` as salt; CASE resumption uses
    ``info=b"SessionResumptionKeys"``.
    """
    okm = HKDF(
        algorithm=hashes.SHA256(), length=3 * KEY_LENGTH, salt=salt, info=info
    ).derive(shared_secret)
    return SessionKeys(
        i2r_key=okm[:KEY_LENGTH],
        r2i_key=okm[KEY_LENGTH : 2 * KEY_LENGTH],
        attestation_challenge=okm[2 * KEY_LENGTH :],
    )
