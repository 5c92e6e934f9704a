"""Message Reliability Protocol (MRP) arithmetic, Matter Core spec 4.12.

The exchange layer (:mod:`.exchange`) keeps the MRP state of each exchange; this module holds the
constants and the pure functions: the retransmission backoff and the per-message retransmit
record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from matter_ota.messaging.session import Address

# 4.12.8 MRP parameters
MRP_MAX_TRANSMISSIONS = 5  # the first transmission and four retransmissions
MRP_BACKOFF_BASE = 1.6
MRP_BACKOFF_JITTER = 0.25
MRP_BACKOFF_MARGIN = 1.1
MRP_BACKOFF_THRESHOLD = 1
MRP_STANDALONE_ACK_TIMEOUT = 0.200  # seconds

Jitter = Callable[[], float]
"""A source of uniform random numbers in [0, 1): ``random.random`` or a pinned value in tests.

The jitter only spreads retransmissions apart; it protects no secret, so it need not come from
the operating system's generator (``SystemRandom`` costs a system call per reliable message)."""


def backoff_interval(base_interval: float, send_count: int, jitter: float) -> float:
    """Seconds to wait after transmission number ``send_count`` (0 = the first) (4.12.2.1)::

        i = MRP_BACKOFF_MARGIN * base_interval
        t = i * MRP_BACKOFF_BASE ** max(0, send_count - MRP_BACKOFF_THRESHOLD)
              * (1 + jitter * MRP_BACKOFF_JITTER)

    ``base_interval`` is the peer's active or idle interval, ``jitter`` is uniform in [0, 1).
    """
    exponent = send_count - MRP_BACKOFF_THRESHOLD
    return (
        base_interval
        * MRP_BACKOFF_MARGIN
        * (MRP_BACKOFF_BASE**exponent if exponent > 0 else 1.0)  # ** costs; most sends are first
        * (1.0 + jitter * MRP_BACKOFF_JITTER)
    )


def max_retransmission_time(base_interval: float) -> float:
    """Upper bound of the time from the first transmission until MRP gives up."""
    return sum(backoff_interval(base_interval, n, 1.0) for n in range(MRP_MAX_TRANSMISSIONS))


@dataclass(slots=True)
class Retransmit:
    """A reliable message awaiting its acknowledgement: the exact bytes go out again."""

    counter: int
    datagram: bytes
    send_count: int  # transmissions so far minus one (0 after the first transmission)
    next_at: float
    addr: Address | None = None
