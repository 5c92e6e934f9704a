"""The message layer's own error type."""

from __future__ import annotations


class MessageError(ValueError):
    """A datagram that cannot be accepted: malformed, unauthenticated, duplicate, unknown session.

    Every decoder of the message layer raises this and nothing else on bad input; the node turns
    it into a dropped datagram and a debug log line.
    """
