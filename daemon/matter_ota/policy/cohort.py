"""Cohorts: which devices a release with a given seed and percent selects.

Every device gets a **score**, the first 64 bits of HMAC-SHA256 keyed with the cohort seed
over its (compressed fabric id, node id). The score is a uniformly random number that
anyone holding the seed recomputes, so the daemon, ``explain`` and every replica agree.

*Hash only* (what a vendor console does) selects the devices whose score falls under
``percent`` % of the score space. Its count is binomial: in a 20-device home, 10 % selects
0 devices 12 % of the time and 4 or more 13 % of the time.

*Ours* ranks the known devices of the channel and product by score. Devices that were
**offered** stay selected (sticky); the other places go to the lowest-scored devices not
yet offered, i.e. a prefix of one fixed ranking:

    selected = offered + the (count - |offered|) lowest-scored other known devices

How many? Let ``natural`` be the offered devices plus the others whose score is under p
(what the hash alone would add), ``t = floor(p*N + u)`` with ``u`` in [0, 1) drawn from the
seed, and ``lo = ceil(p*N - 1)``:

    count = clamp(natural, lo, t)        (``exact=True``: count = t)

so ``p*N - 1 <= count < p*N + 1``: within one device of p x N at every N. Holding back
surplus natural devices costs nothing (they were never offered and may be selected later),
but adding devices the hash would not pick is permanent once they are offered; doing it
only when the count would otherwise fall more than one device short is what keeps the
first devices to report from being favoured while a fleet grows (the exact count t would
give the first tenth of a growing 20-device fleet 16 % at p = 10 %, the others 9 %; this
gives both the same share, see the README's table).

Invariants (tests/test_cohort.py proves them with hypothesis):

* ``natural``, ``lo`` and ``t`` never shrink as N or the percent grows or a selected device
  is offered, so neither does ``count``; only selected devices are ever offered, so
  ``|offered| <= count`` and ``|selected| == count`` at every N.
* Sticky: an offered device stays selected whatever arrives later.
* Increase only adds: with the same known and offered devices, a larger percent gives a
  count at least as large over the same ranking, so a superset.
* Same seed, same ledger: the same devices, whatever order the facts were loaded in; stop
  and resume touch neither, so resume is the identical set.
* No early-reporter bias: when the ledger knows the fleet (devices check in daily, so it
  does by the time of a release), the selection is a function of the known devices and
  the seed, not of who asks first; when the fleet grows during the rollout, see above.

A device not yet known is judged as if it had just joined (N + 1), which is what the index
will say once the daemon records it.
"""

from __future__ import annotations

import bisect
import hmac
from collections.abc import Iterable

from matter_ota.policy.model import DeviceRef

SCORE_BITS = 64
SCORE_SPACE = 1 << SCORE_BITS
_ROUNDING_LABEL = b"matter-ota cohort rounding offset"


def score(seed: bytes, ref: DeviceRef) -> int:
    """The device's 64-bit place in the cohort keyed by ``seed``."""
    message = ref.fabric.to_bytes(8, "big") + ref.node.to_bytes(8, "big")
    return int.from_bytes(hmac.digest(seed, message, "sha256")[:8], "big")


def rounding_offset(seed: bytes) -> int:
    """``u`` of the randomised rounding, as an integer in [0, 2**64)."""
    return int.from_bytes(hmac.digest(seed, _ROUNDING_LABEL, "sha256")[:8], "big")


def target_count(percent: int, known: int, offset: int) -> int:
    """floor(percent * known / 100 + offset / 2**64), in exact integer arithmetic."""
    return (percent * known * SCORE_SPACE + 100 * offset) // (100 * SCORE_SPACE)


def floor_count(percent: int, known: int) -> int:
    """ceil(percent * known / 100 - 1), at least 0: the fewest devices within one of p x N."""
    return max(0, -((100 - percent * known) // 100))


def natural_bound(percent: int) -> int:
    """The smallest score the hash alone does not select: score * 100 < percent * 2**64."""
    return -((-percent * SCORE_SPACE) // 100)


def count_for(percent: int, known: int, offset: int, natural: int, exact: bool) -> int:
    """How many devices are selected: clamp(natural, lo, t), or t when ``exact``."""
    high = target_count(percent, known, offset)
    if exact:
        return high
    return min(max(natural, floor_count(percent, known)), high)


def hash_only_selected(seed: bytes, percent: int, ref: DeviceRef) -> bool:
    """The stateless baseline: score under percent % of the score space."""
    return score(seed, ref) * 100 < percent * SCORE_SPACE


def _key(score_value: int, ref: DeviceRef) -> int:
    # One int orders by score, then fabric, then node: ties are broken, compares stay cheap.
    return (score_value << 128) | (ref.fabric << 64) | ref.node


class CohortIndex:
    """The selection for one release cohort (seed + percent) over the known devices of its
    channel and product, with the devices already offered.

    The daemon owns it: :meth:`add_known` when a device of the channel and product checks
    in, :meth:`mark_offered` when the engine offered it the release. The engine only reads
    it (:meth:`is_selected`). Rebuild it from the ledger when the seed changes; call
    :meth:`set_percent` when the percent grows.
    """

    __slots__ = ("_bound", "_cut", "_keys", "_offered", "_offset", "_percent", "_rest",
                 "_target", "exact", "seed")

    def __init__(self, seed: bytes | str, percent: int, known: Iterable[DeviceRef] = (),
                 offered: Iterable[DeviceRef] = (), *, exact: bool = False) -> None:
        self.seed = bytes.fromhex(seed) if isinstance(seed, str) else bytes(seed)
        self.exact = exact
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be 0..100, not {percent}")
        self._percent = percent
        self._bound = natural_bound(percent) << 128  # as a key: below it, score < bound
        self._offset = rounding_offset(self.seed)
        self._keys: dict[DeviceRef, int] = {}
        for ref in known:
            self._keys[ref] = _key(score(self.seed, ref), ref)
        self._offered: set[DeviceRef] = set()
        for ref in offered:
            if ref not in self._keys:
                self._keys[ref] = _key(score(self.seed, ref), ref)
            self._offered.add(ref)
        offered_set = self._offered
        self._rest = sorted(k for ref, k in self._keys.items() if ref not in offered_set)
        self._cut = -1
        self._target = 0
        self._recut()

    # --- reading ----------------------------------------------------------------------------

    @property
    def percent(self) -> int:
        return self._percent

    @property
    def known_count(self) -> int:
        return len(self._keys)

    @property
    def offered_count(self) -> int:
        return len(self._offered)

    @property
    def target(self) -> int:
        """How many devices are selected at the current N (see the module docstring)."""
        return self._target

    def is_known(self, ref: DeviceRef) -> bool:
        return ref in self._keys

    def is_offered(self, ref: DeviceRef) -> bool:
        return ref in self._offered

    def is_selected(self, ref: DeviceRef) -> bool:
        """Whether the device is in the cohort (an unknown one: as if it joined now)."""
        key = self._keys.get(ref)
        if key is not None:
            return ref in self._offered or key <= self._cut
        key = _key(score(self.seed, ref), ref)
        return bisect.bisect_left(self._rest, key) < self._places_with(key)

    def selected(self) -> set[DeviceRef]:
        """Every selected device (offered ones first, then the lowest-scored others)."""
        chosen = set(self._offered)
        places = self._places()
        for key in self._rest[:places]:
            chosen.add(DeviceRef((key >> 64) & (SCORE_SPACE - 1), key & (SCORE_SPACE - 1)))
        return chosen

    @property
    def selected_count(self) -> int:
        return len(self._offered) + min(self._places(), len(self._rest))

    def rank(self, ref: DeviceRef) -> int:
        """0-based place among the known devices not offered yet (offered: -1)."""
        if ref in self._offered:
            return -1
        key = self._keys.get(ref)
        if key is None:
            key = _key(score(self.seed, ref), ref)
        return bisect.bisect_left(self._rest, key)

    def describe(self, ref: DeviceRef) -> str:
        """Why the device is in or out, in a sentence for ``explain``."""
        key = self._keys.get(ref)
        offered = len(self._offered)
        if key is None:
            key = _key(score(self.seed, ref), ref)
            n, places = len(self._keys) + 1, self._places_with(key)
        else:
            n, places = len(self._keys), self._places()
        target = offered + places
        if ref in self._offered:
            return (f"offered before, so it stays selected ({target} of {n} known devices "
                    f"selected at {self._percent} %)")
        rank = bisect.bisect_left(self._rest, key)
        return (f"ranked {rank + 1} of {n - offered} devices not offered yet, "
                f"{'inside' if rank < places else 'outside'} the {places} open places "
                f"({target} of {n} known devices selected at {self._percent} %, "
                f"{offered} offered)")

    # --- updating (the daemon) --------------------------------------------------------------

    def add_known(self, ref: DeviceRef) -> bool:
        """Record a device of this channel and product; False if it was known."""
        if ref in self._keys:
            return False
        key = _key(score(self.seed, ref), ref)
        self._keys[ref] = key
        bisect.insort(self._rest, key)
        self._recut()
        return True

    def mark_offered(self, ref: DeviceRef) -> bool:
        """Record that the device was offered the release. Only a selected device can be:
        returns False (and records nothing) for a device outside the cohort, e.g. a pinned
        one, so the offered devices never outnumber the target."""
        if ref in self._offered:
            return False
        if not self.is_selected(ref):
            return False
        self.add_known(ref)
        key = self._keys[ref]
        index = bisect.bisect_left(self._rest, key)
        del self._rest[index]
        self._offered.add(ref)
        self._recut()
        return True

    def set_percent(self, percent: int) -> None:
        """Change the percent (an increase adds devices; a decrease keeps the offered)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be 0..100, not {percent}")
        self._percent = percent
        self._bound = natural_bound(percent) << 128
        self._recut()

    def _places(self) -> int:
        return max(0, self._target - len(self._offered))

    def _places_with(self, key: int) -> int:
        # Open places if a device with this key (not known yet) joined now.
        natural = len(self._offered) + bisect.bisect_left(self._rest, self._bound)
        natural += key < self._bound
        count = count_for(self._percent, len(self._keys) + 1, self._offset, natural,
                          self.exact)
        return max(0, count - len(self._offered))

    def _recut(self) -> None:
        natural = len(self._offered) + bisect.bisect_left(self._rest, self._bound)
        self._target = count_for(self._percent, len(self._keys), self._offset, natural,
                                 self.exact)
        places = min(self._places(), len(self._rest))
        self._cut = self._rest[places - 1] if places > 0 else -1
