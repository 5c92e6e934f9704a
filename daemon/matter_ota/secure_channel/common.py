"""What PASE and CASE share: the message to send, the error types, the closing StatusReport.

Each handshake module subclasses the errors (``PaseError``, ``CaseError``, ...) so a caller can
tell the two apart, and catch either through the bases here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from matter_ota import tlv
from matter_ota.messaging.status import (
    GeneralCode,
    Protocol,
    SecureChannelCode,
    StatusError,
    StatusReport,
)

if TYPE_CHECKING:
    from matter_ota.messaging.exchange import Exchange

#: Where a handshake draws its random values from (``secrets.token_bytes``; fixed in tests).
Random = Callable[[int], bytes]


@dataclass(frozen=True)
class Send:
    """A message to send on the handshake's exchange."""

    opcode: int
    payload: bytes
    protocol_id: int = Protocol.SECURE_CHANNEL


def send_all(exchange: Exchange, sends: list[Send]) -> None:
    """Send each of a handshake step's messages on ``exchange``, in order."""
    for s in sends:
        exchange.send(s.protocol_id, s.opcode, s.payload)


class HandshakeError(StatusError):
    """A failed handshake step; ``report`` is the StatusReport to send to the peer.

    The default codes are connectedhomeip's for a bad message: general FAILURE, secure channel
    INVALID_PARAMETER (4.11.1.4).
    """

    def __init__(
        self,
        reason: str,
        protocol_code: int = SecureChannelCode.INVALID_PARAMETER,
        general_code: int = GeneralCode.FAILURE,
        data: bytes = b"",
    ) -> None:
        super().__init__(general_code, Protocol.SECURE_CHANNEL, protocol_code, data, reason)


class UnexpectedMessage(HandshakeError):
    """A message the current state does not accept; the state is unchanged."""


class PeerReportedFailure(HandshakeError):
    """The peer ended the handshake with a failure StatusReport (nothing to send back)."""

    def __init__(self, report: StatusReport) -> None:
        super().__init__(
            f"peer reported {report.describe()}",
            report.protocol_code,
            report.general_code,
            report.data,
        )


def busy_wait(report: StatusReport) -> float | None:
    """Seconds a BUSY StatusReport asks the initiator to wait (4.11.1.4: protocol data is the
    minimum wait in ms, u16 little endian); None when ``report`` is not BUSY."""
    if (report.protocol_id != Protocol.SECURE_CHANNEL
            or report.protocol_code != SecureChannelCode.BUSY):
        return None
    data = report.data
    return int.from_bytes(data[:2], "little") / 1000 if len(data) >= 2 else 0.0


def success_report() -> StatusReport:
    """4.11.1.4: the StatusReport that completes a handshake (SESSION_ESTABLISHMENT_SUCCESS)."""
    return StatusReport(
        GeneralCode.SUCCESS,
        Protocol.SECURE_CHANNEL,
        SecureChannelCode.SESSION_ESTABLISHMENT_SUCCESS,
    )


_T = TypeVar("_T", bound=tlv.Struct)


def decode_message(
    schema: type[_T],
    payload: bytes,
    error: type[HandshakeError],
    decode: Callable[[type[_T], bytes], _T] | None = None,
) -> _T:
    """``payload`` decoded as ``schema`` (by ``decode``, default ``schema.decode``).

    A malformed message raises ``error`` naming the schema.
    """
    try:
        return schema.decode(payload) if decode is None else decode(schema, payload)
    except tlv.TLVError as e:
        raise error(f"malformed {schema.__name__}: {e}") from None
