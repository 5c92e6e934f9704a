"""The release state machine: the console's operations as pure functions on :class:`Release`.

A release row is in one of five states: absent, local LIVE, local INACTIVE, DCL LIVE, DCL
INACTIVE. :data:`TRANSITIONS` says which operation is legal in which state (h11's
``_state.py`` style); an illegal one raises :class:`TransitionError` and, since releases are
frozen values, nothing changes. The CLI calls these functions and then writes the YAML.

    release (new set)   new cohort seed, new percent, new image, LIVE
    release (same set)  same seed and percent (or larger), new image, LIVE
    stop                LIVE -> INACTIVE: no new offers; devices that got it keep it
    resume              INACTIVE -> LIVE with the same seed and percent: the same devices
    increase            LIVE, percent only grows, the seed stays: every selected device stays
    auto-stop           LIVE -> INACTIVE with the failure reason (also on DCL rows)
    source dcl          the channel follows the DCL ledger: DCL row, new seed, LIVE
    source local        a DCL row stops (INACTIVE); a local release may replace it

DCL rows are read-only: every operator edit of a LIVE DCL row is refused; switch the source.
"""

from __future__ import annotations

import dataclasses
import enum
import secrets
from datetime import datetime

from matter_ota.policy.model import (
    AUTO_STOP_PREFIX,
    Product,
    Release,
    ReleaseStatus,
    Source,
)

SEED_BYTES = 16


class ReleaseError(ValueError):
    """A release operation refused; the message says why and what to do."""


class TransitionError(ReleaseError):
    """The operation is not legal in the release's current state."""

    def __init__(self, message: str, state: RowState, op: Op) -> None:
        super().__init__(message)
        self.state = state
        self.op = op


class RowState(enum.Enum):
    """What the releases table holds for one (channel, product): the rows of the table below."""
    ABSENT = "absent"
    LOCAL_LIVE = "local LIVE"
    LOCAL_INACTIVE = "local INACTIVE"
    DCL_LIVE = "DCL LIVE"
    DCL_INACTIVE = "DCL INACTIVE"


class Op(enum.Enum):
    """An operation on a release, named as the operator types it."""
    RELEASE_NEW_SET = "release --new-set"
    RELEASE_SAME_SET = "release --same-set"
    STOP = "stop"
    RESUME = "resume"
    INCREASE = "increase"
    AUTO_STOP = "auto-stop"
    SOURCE_DCL = "source dcl"
    SOURCE_LOCAL = "source local"


_A, _LL, _LI, _DL, _DI = (
    RowState.ABSENT, RowState.LOCAL_LIVE, RowState.LOCAL_INACTIVE,
    RowState.DCL_LIVE, RowState.DCL_INACTIVE,
)

# (state, operation) -> state after. Anything missing is illegal.
TRANSITIONS: dict[tuple[RowState, Op], RowState] = {
    (_A, Op.RELEASE_NEW_SET): _LL,
    (_A, Op.SOURCE_DCL): _DL,
    (_LL, Op.RELEASE_NEW_SET): _LL,
    (_LL, Op.RELEASE_SAME_SET): _LL,
    (_LL, Op.STOP): _LI,
    (_LL, Op.INCREASE): _LL,
    (_LL, Op.AUTO_STOP): _LI,
    (_LL, Op.SOURCE_DCL): _DL,
    (_LI, Op.RELEASE_NEW_SET): _LL,
    (_LI, Op.RELEASE_SAME_SET): _LL,
    (_LI, Op.RESUME): _LL,
    (_LI, Op.SOURCE_DCL): _DL,
    (_DL, Op.SOURCE_LOCAL): _DI,
    (_DL, Op.AUTO_STOP): _DI,
    (_DI, Op.RELEASE_NEW_SET): _LL,
    (_DI, Op.RELEASE_SAME_SET): _LL,
    (_DI, Op.SOURCE_DCL): _DL,
}

# Why an operation is refused, by state; falls back to a generic sentence.
_REFUSALS: dict[tuple[RowState, Op], str] = {
    (_A, Op.RELEASE_SAME_SET): "there is no release yet whose devices could be reused; "
    "release to a new set",
    (_LL, Op.RESUME): "the release is already LIVE",
    (_LI, Op.STOP): "the release is already stopped (INACTIVE)",
    (_LI, Op.AUTO_STOP): "the release is already stopped (INACTIVE)",
    (_LI, Op.INCREASE): "the release is stopped; resume it first (resume brings back the "
    "same devices), then increase",
    (_LL, Op.SOURCE_LOCAL): "the release already uses a local image",
    (_LI, Op.SOURCE_LOCAL): "the release already uses a local image",
    (_DL, Op.SOURCE_DCL): "the channel already follows the DCL",
    (_DI, Op.RESUME): "this DCL release was stopped; `source dcl` follows the DCL again, or "
    "release a local image",
    (_DI, Op.SOURCE_LOCAL): "the DCL release is already stopped",
}
_DCL_READ_ONLY = (
    "the release follows the DCL and is read-only; switch the channel back with "
    "`matter-ota source --channel {channel} local` first"
)


def row_state(release: Release | None) -> RowState:
    """The table row a release (or its absence) is in."""
    if release is None:
        return RowState.ABSENT
    live = release.status is ReleaseStatus.LIVE
    if release.source is Source.LOCAL:
        return RowState.LOCAL_LIVE if live else RowState.LOCAL_INACTIVE
    return RowState.DCL_LIVE if live else RowState.DCL_INACTIVE


def check(release: Release | None, op: Op) -> RowState:
    """The state ``op`` leads to from ``release``'s state; TransitionError if illegal."""
    state = row_state(release)
    after = TRANSITIONS.get((state, op))
    if after is not None:
        return after
    what = f"{release.key}: " if release is not None else ""
    if state is RowState.DCL_LIVE:
        assert release is not None
        reason = _DCL_READ_ONLY.format(channel=release.channel)
    elif state is RowState.ABSENT:
        reason = _REFUSALS.get((state, op), "there is no release for this channel and product")
    else:
        reason = _REFUSALS.get((state, op), f"not possible on a {state.value} release")
    raise TransitionError(f"{what}cannot {op.value}: {reason}", state, op)


def new_seed() -> str:
    """A fresh cohort seed: 16 random bytes, hex."""
    return secrets.token_hex(SEED_BYTES)


def check_percent(percent: object) -> int:
    """The rollout percent is an integer 1..100; ReleaseError otherwise."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise ReleaseError(f"rollout percent must be an integer from 1 to 100, not {percent!r}")
    return percent


def release_new_set(
    current: Release | None,
    *,
    channel: str,
    product: Product,
    image: str,
    version: int | None,
    percent: int,
    now: datetime,
    seed: str | None = None,
) -> Release:
    """Release ``image`` to a new random set of ``percent`` % of the devices (new seed).

    Settings an operator wrote on the previous row (pins, exclusions, failure policy, ramp,
    window, hardware constraints) carry over; status, seed, percent and image are new.
    """
    check(current, Op.RELEASE_NEW_SET)
    check_percent(percent)
    base = current if current is not None else Release(
        channel=channel, product=product, image=None, version=None, source=Source.LOCAL,
        status=ReleaseStatus.LIVE, rollout_percent=percent, cohort_seed="", released_at=now,
    )
    return dataclasses.replace(
        base, channel=channel, product=product, image=image, version=version,
        source=Source.LOCAL, status=ReleaseStatus.LIVE, rollout_percent=percent,
        cohort_seed=seed if seed is not None else new_seed(), released_at=now,
        percent_since=None, stop_reason=None,
    )


def release_same_set(
    current: Release | None,
    *,
    image: str,
    version: int | None,
    now: datetime,
    percent: int | None = None,
) -> Release:
    """Overwrite the image for the same devices: same seed and percent, new image, LIVE.

    ``percent`` may repeat the current one or grow it (a superset, as with increase); a
    smaller one would drop devices and is refused.
    """
    check(current, Op.RELEASE_SAME_SET)
    assert current is not None
    new_percent = current.rollout_percent if percent is None else check_percent(percent)
    if new_percent < current.rollout_percent:
        raise ReleaseError(
            f"{current.key}: the same set is {current.rollout_percent} %; {new_percent} % "
            "would drop devices. Keep the percent, or release to a new set"
        )
    return dataclasses.replace(
        current, image=image, version=version, source=Source.LOCAL, status=ReleaseStatus.LIVE,
        rollout_percent=new_percent, released_at=now, stop_reason=None,
        percent_since=None if new_percent == current.rollout_percent else now,
    )


def stop(current: Release | None, *, now: datetime, reason: str = "stopped by operator") -> Release:
    """LIVE -> INACTIVE: no new device gets the release; devices that have it keep it."""
    check(current, Op.STOP)
    assert current is not None
    return dataclasses.replace(current, status=ReleaseStatus.INACTIVE, stop_reason=reason)


def resume(current: Release | None, *, now: datetime) -> Release:
    """INACTIVE -> LIVE with the same seed and percent: exactly the same devices."""
    check(current, Op.RESUME)
    assert current is not None
    return dataclasses.replace(current, status=ReleaseStatus.LIVE, stop_reason=None)


def increase(current: Release | None, *, percent: int, now: datetime) -> Release:
    """Grow the rollout; the seed stays, so every device selected so far stays selected."""
    check(current, Op.INCREASE)
    assert current is not None
    check_percent(percent)
    if percent <= current.rollout_percent:
        raise ReleaseError(
            f"{current.key}: the rollout is at {current.rollout_percent} %; increase needs a "
            f"larger percent than that, not {percent}. To reach fewer devices, stop the "
            "release or release to a new set"
        )
    return dataclasses.replace(current, rollout_percent=percent, percent_since=now)


def auto_stop(current: Release | None, *, reason: str, now: datetime) -> Release:
    """LIVE -> INACTIVE because failures crossed the threshold; ``reason`` is recorded."""
    check(current, Op.AUTO_STOP)
    assert current is not None
    return dataclasses.replace(
        current, status=ReleaseStatus.INACTIVE, stop_reason=AUTO_STOP_PREFIX + reason
    )


def switch_source(
    current: Release | None,
    *,
    channel: str,
    product: Product,
    to: Source,
    now: datetime,
    percent: int = 100,
    seed: str | None = None,
) -> Release:
    """Switch a (channel, product) between the local firmware folder and the DCL.

    To DCL: a LIVE DCL row that follows the ledger (new seed, ``percent``, no image).
    To local: the DCL row stops; a local release may then replace it.
    """
    if to is Source.DCL:
        check(current, Op.SOURCE_DCL)
        check_percent(percent)
        base = current if current is not None else Release(
            channel=channel, product=product, image=None, version=None, source=Source.DCL,
            status=ReleaseStatus.LIVE, rollout_percent=percent, cohort_seed="", released_at=now,
        )
        return dataclasses.replace(
            base, image=None, version=None, source=Source.DCL, status=ReleaseStatus.LIVE,
            rollout_percent=percent, cohort_seed=seed if seed is not None else new_seed(),
            released_at=now, percent_since=None, stop_reason=None,
        )
    check(current, Op.SOURCE_LOCAL)
    assert current is not None
    return dataclasses.replace(
        current, status=ReleaseStatus.INACTIVE, stop_reason="source switched to local"
    )

