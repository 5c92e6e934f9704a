"""The release state machine: every (state, operation) pair, legal or refused."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matter_ota.policy import transitions as t
from matter_ota.policy.model import Product, Release, ReleaseStatus, Source
from matter_ota.policy.transitions import Op, ReleaseError, RowState, TransitionError

NOW = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
PRODUCT = Product(0xFFF1, 0x8001)


def make(state: RowState) -> Release | None:
    if state is RowState.ABSENT:
        return None
    release = Release(
        channel="production", product=PRODUCT, image="a.ota", version=2, source=Source.LOCAL,
        status=ReleaseStatus.LIVE, rollout_percent=10, cohort_seed="ab" * 16,
        released_at=NOW,
    )
    if state in (RowState.DCL_LIVE, RowState.DCL_INACTIVE):
        release = dataclasses.replace(release, source=Source.DCL, image=None, version=None)
    if state in (RowState.LOCAL_INACTIVE, RowState.DCL_INACTIVE):
        release = dataclasses.replace(release, status=ReleaseStatus.INACTIVE,
                                      stop_reason="stopped by operator")
    return release


def run(op: Op, release: Release | None) -> Release:
    if op is Op.RELEASE_NEW_SET:
        return t.release_new_set(release, channel="production", product=PRODUCT,
                                 image="b.ota", version=3, percent=25, now=LATER)
    if op is Op.RELEASE_SAME_SET:
        return t.release_same_set(release, image="b.ota", version=3, now=LATER)
    if op is Op.STOP:
        return t.stop(release, now=LATER)
    if op is Op.RESUME:
        return t.resume(release, now=LATER)
    if op is Op.INCREASE:
        return t.increase(release, percent=50, now=LATER)
    if op is Op.AUTO_STOP:
        return t.auto_stop(release, reason="7 of 20 failed", now=LATER)
    if op is Op.SOURCE_DCL:
        return t.switch_source(release, channel="production", product=PRODUCT, to=Source.DCL,
                               now=LATER)
    return t.switch_source(release, channel="production", product=PRODUCT, to=Source.LOCAL,
                           now=LATER)


@pytest.mark.parametrize("op", list(Op))
@pytest.mark.parametrize("state", list(RowState))
def test_every_pair_follows_the_table(state: RowState, op: Op) -> None:
    release = make(state)
    before = dataclasses.replace(release) if release is not None else None
    expected = t.TRANSITIONS.get((state, op))
    if expected is None:
        with pytest.raises(TransitionError) as info:
            run(op, release)
        assert info.value.state is state and info.value.op is op
        assert release == before  # refused: nothing changed
        assert op.value in str(info.value)
    else:
        after = run(op, release)
        assert t.row_state(after) is expected
        assert release == before  # pure: the input is untouched


def test_new_set_draws_a_new_seed_and_percent() -> None:
    old = make(RowState.LOCAL_LIVE)
    new = run(Op.RELEASE_NEW_SET, old)
    assert old is not None
    assert new.cohort_seed != old.cohort_seed and len(new.cohort_seed) == 32
    assert (new.rollout_percent, new.image, new.version, new.released_at) == (25, "b.ota", 3,
                                                                              LATER)


def test_same_set_keeps_seed_and_percent() -> None:
    for state in (RowState.LOCAL_LIVE, RowState.LOCAL_INACTIVE):
        old = make(state)
        assert old is not None
        new = run(Op.RELEASE_SAME_SET, old)
        assert (new.cohort_seed, new.rollout_percent) == (old.cohort_seed, old.rollout_percent)
        assert new.image == "b.ota" and new.status is ReleaseStatus.LIVE
        assert new.stop_reason is None


def test_same_set_may_grow_but_never_shrink() -> None:
    old = make(RowState.LOCAL_LIVE)
    assert t.release_same_set(old, image="b", version=3, now=LATER, percent=40).rollout_percent \
        == 40
    with pytest.raises(ReleaseError, match="would drop devices"):
        t.release_same_set(old, image="b", version=3, now=LATER, percent=5)


def test_stop_then_resume_is_the_same_release_live() -> None:
    old = make(RowState.LOCAL_LIVE)
    stopped = t.stop(old, now=LATER)
    assert stopped.status is ReleaseStatus.INACTIVE and stopped.stop_reason
    resumed = t.resume(stopped, now=LATER)
    assert resumed == old


def test_increase_only_grows() -> None:
    old = make(RowState.LOCAL_LIVE)
    assert old is not None
    for percent in (10, 9, 1):
        with pytest.raises(ReleaseError, match="larger percent"):
            t.increase(old, percent=percent, now=LATER)
    grown = t.increase(old, percent=11, now=LATER)
    assert grown.rollout_percent == 11 and grown.cohort_seed == old.cohort_seed
    assert grown.percent_since == LATER


@pytest.mark.parametrize("percent", [0, 101, -5, 10.5, True, "10", None])
def test_percent_must_be_an_integer_1_to_100(percent: object) -> None:
    with pytest.raises(ReleaseError, match="integer from 1 to 100"):
        t.release_new_set(None, channel="production", product=PRODUCT, image="a", version=1,
                          percent=percent, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize("op", [Op.RELEASE_NEW_SET, Op.RELEASE_SAME_SET, Op.STOP, Op.RESUME,
                                Op.INCREASE])
def test_dcl_rows_are_read_only(op: Op) -> None:
    with pytest.raises(TransitionError, match="source --channel production local"):
        run(op, make(RowState.DCL_LIVE))


def test_source_switch_walk() -> None:
    local = make(RowState.LOCAL_LIVE)
    dcl = run(Op.SOURCE_DCL, local)
    assert dcl.source is Source.DCL and dcl.image is None and dcl.rollout_percent == 100
    assert local is not None and dcl.cohort_seed != local.cohort_seed
    back = run(Op.SOURCE_LOCAL, dcl)
    assert back.status is ReleaseStatus.INACTIVE and back.stop_reason == "source switched to local"
    again = run(Op.RELEASE_NEW_SET, back)
    assert again.source is Source.LOCAL and again.status is ReleaseStatus.LIVE


def test_auto_stop_records_reason_and_is_recognised() -> None:
    stopped = run(Op.AUTO_STOP, make(RowState.LOCAL_LIVE))
    assert stopped.auto_stopped and "7 of 20 failed" in (stopped.stop_reason or "")
    assert not t.stop(make(RowState.LOCAL_LIVE), now=LATER).auto_stopped


@given(st.lists(st.sampled_from(list(Op)), max_size=30))
def test_any_sequence_keeps_the_row_valid(ops: list[Op]) -> None:
    release: Release | None = None
    for op in ops:
        try:
            after = run(op, release)
        except TransitionError:
            continue
        except ReleaseError:
            assert op is Op.INCREASE and release is not None and release.rollout_percent >= 50
            continue
        # Invariants of every reachable row.
        assert 1 <= after.rollout_percent <= 100
        assert (after.image is None) == (after.source is Source.DCL)
        assert (after.stop_reason is None) == (after.status is ReleaseStatus.LIVE)
        if op is Op.INCREASE and release is not None:
            assert after.cohort_seed == release.cohort_seed
            assert after.rollout_percent > release.rollout_percent
        if op is Op.RESUME and release is not None:
            assert (after.cohort_seed, after.rollout_percent) == (release.cohort_seed,
                                                                 release.rollout_percent)
        release = after
