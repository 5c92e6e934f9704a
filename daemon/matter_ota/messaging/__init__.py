"""Matter message layer: headers, counters, sessions, MRP, exchanges (Matter Core spec ch. 4).

Everything here is sans-IO: bytes and ``now`` (seconds, monotonic) in, bytes and deadlines out.
"""

from matter_ota.messaging.errors import MessageError

__all__ = ["MessageError"]
