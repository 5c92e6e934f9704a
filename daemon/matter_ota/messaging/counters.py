"""Message counters and duplicate detection, Matter Core spec 4.6.

- Outgoing: one global unencrypted counter per node and one counter per secure session, both
  starting at a random value in ``[1, 2**28]`` (4.6.1.1, 4.6.1.2).
- Incoming: a message reception state per peer and session (4.6.5): the largest counter seen and
  a bitmap of the :data:`COUNTER_WINDOW` counters just below it.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable

from matter_ota.messaging.errors import MessageError

# 4.6.5 MSG_COUNTER_WINDOW_SIZE
COUNTER_WINDOW = 32
_WINDOW_MASK = (1 << COUNTER_WINDOW) - 1
_U32 = 1 << 32
_ROLLOVER_FUTURE = (1 << 31) - 1  # 4.6.5.2: up to 2^31 - 1 ahead counts as new
_INIT_MASK = 0x0FFF_FFFF  # 4.6.1.1: random initial value in [1, 2^28]


def random_initial_counter(randbits: Callable[[int], int] = secrets.randbits) -> int:
    """A fresh counter start value in ``[1, 2**28]`` (4.6.1.1)."""
    return (randbits(32) & _INIT_MASK) + 1


class CounterExhausted(MessageError):
    """A secure session used all its counter values; it must be re-established (4.6.1.2)."""


class MessageCounter:
    """An outgoing message counter.

    The global unencrypted counter wraps around at 2**32 (4.6.1.1); a secure session counter
    never reuses a value under one key, so :meth:`next` raises :class:`CounterExhausted` instead
    (4.6.1.2).
    """

    __slots__ = ("_next", "_wraps")

    def __init__(self, start: int | None = None, *, wraps: bool) -> None:
        self._next = random_initial_counter() if start is None else start
        self._wraps = wraps
        if not 0 <= self._next < _U32:
            raise ValueError(f"counter start {self._next} is not a u32")

    @property
    def peek(self) -> int:
        """The value :meth:`next` will return."""
        return self._next

    def next(self) -> int:
        """Take the next counter value."""
        value = self._next
        if value == _U32 - 1 and not self._wraps:
            raise CounterExhausted("secure session message counter exhausted")
        self._next = (value + 1) % _U32
        return value


class _Position(enum.Enum):
    FUTURE = enum.auto()
    MAX = enum.auto()
    IN_WINDOW = enum.auto()
    BEFORE_WINDOW = enum.auto()


class ReceptionState:
    """Duplicate detection for one peer's counters (4.6.5).

    Two rule sets exist:

    - ``encrypted_unicast`` (4.6.5.1): counters never roll over; the state starts synchronised at
      0 when the session is established; anything at or below the window is a duplicate.
    - unencrypted (4.6.5.2): the first counter seen is trusted; counters roll over (up to
      ``2**31 - 1`` ahead is new); a counter behind the window is *accepted* and resets the window,
      because the peer may have rebooted with a new random counter.

    :meth:`check` says whether a counter is a duplicate without changing state; :meth:`commit`
    records it. For secure sessions, commit only after the MIC was verified.
    """

    __slots__ = ("_bitmap", "_encrypted", "_max")

    def __init__(self, *, encrypted_unicast: bool) -> None:
        self._encrypted = encrypted_unicast
        # Bit k of the bitmap set: counter max - (k + 1) was received.
        self._bitmap = 0
        self._max: int | None = 0 if encrypted_unicast else None

    @property
    def max_counter(self) -> int | None:
        """The largest counter accepted so far (None before the first unencrypted message)."""
        return self._max

    def _classify(self, counter: int) -> _Position:
        assert self._max is not None
        if self._encrypted:
            if counter > self._max:
                return _Position.FUTURE
        elif 1 <= (counter - self._max) % _U32 <= _ROLLOVER_FUTURE:
            return _Position.FUTURE
        if counter == self._max:
            return _Position.MAX
        offset = (self._max - counter) % _U32
        return _Position.IN_WINDOW if offset <= COUNTER_WINDOW else _Position.BEFORE_WINDOW

    def is_duplicate(self, counter: int) -> bool:
        """True if ``counter`` must be treated as a duplicate (state is not changed)."""
        if self._max is None:
            return False
        position = self._classify(counter)
        if position is _Position.IN_WINDOW:
            offset = (self._max - counter) % _U32
            return bool(self._bitmap >> (offset - 1) & 1)
        if position is _Position.FUTURE:
            return False
        if position is _Position.MAX:
            return True
        return self._encrypted  # before the window: duplicate only under the encrypted rules

    def commit(self, counter: int) -> None:
        """Record ``counter`` as received (call only if :meth:`is_duplicate` said False)."""
        if self._max is None:
            self._max = counter
            self._bitmap = 0
            return
        position = self._classify(counter)
        if position is _Position.IN_WINDOW:
            offset = (self._max - counter) % _U32
            self._bitmap |= 1 << (offset - 1)
        elif position is not _Position.MAX:
            shift = (counter - self._max) % _U32
            self._max = counter
            if shift > COUNTER_WINDOW:
                self._bitmap = 0
            else:
                self._bitmap = ((self._bitmap << shift) | (1 << (shift - 1))) & _WINDOW_MASK

    def accept(self, counter: int) -> bool:
        """Check and commit in one step; returns True if the message is new."""
        top = self._max
        if self._encrypted and top is not None and counter > top:
            # The common case, once per secured message: the next counter (4.6.5.1). What
            # commit() does for a FUTURE counter, without classifying it twice.
            shift = counter - top
            self._max = counter
            self._bitmap = (
                ((self._bitmap << shift) | (1 << (shift - 1))) & _WINDOW_MASK
                if shift <= COUNTER_WINDOW
                else 0
            )
            return True
        if self.is_duplicate(counter):
            return False
        self.commit(counter)
        return True
