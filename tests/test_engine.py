"""decide() and the automatic transitions: every rule, its reason, and the invariants."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matter_ota.policy import transitions as t
from matter_ota.policy.cohort import CohortIndex
from matter_ota.policy.engine import (
    advance_ramp,
    apply_update,
    busy_delay,
    channel_for,
    decide,
    failure_verdict,
    window_wait,
)
from matter_ota.policy.model import (
    ApplyAction,
    BusyPolicy,
    Channel,
    Decision,
    Device,
    DeviceMatch,
    DeviceRef,
    FailurePolicy,
    ImageInfo,
    IntRange,
    MaintenanceWindow,
    OutcomeCounts,
    Product,
    Query,
    QueryStatus,
    RampStep,
    Release,
    ReleaseKey,
    ReleaseState,
    ReleaseStatus,
    Source,
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
RELEASED = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
P = Product(0xFFF1, 0x8001)
FABRIC = 0x2906C908D115D362
KEY = ReleaseKey("production", P)


def image(version: int = 2, **kw: object) -> ImageInfo:
    fields: dict[str, object] = dict(
        vendor_id=P.vendor_id, product_id=P.product_id, version=version,
        version_string=f"{version}.0", size=1000, digest=b"\0" * 32,
        designator=f"light-{version}.ota")
    fields.update(kw)
    return ImageInfo(**fields)  # type: ignore[arg-type]


def release(**kw: object) -> Release:
    fields: dict[str, object] = dict(
        channel="production", product=P, image="light-2.ota", version=2, source=Source.LOCAL,
        status=ReleaseStatus.LIVE, rollout_percent=100, cohort_seed="5e" * 16,
        released_at=RELEASED)
    fields.update(kw)
    return Release(**fields)  # type: ignore[arg-type]


def state(rel: Release | None = None, images: tuple[ImageInfo, ...] | None = None,
          channels: tuple[Channel, ...] = (Channel("production"),), **kw: object
          ) -> ReleaseState:
    rel = release() if rel is None else rel
    return ReleaseState(
        channels=channels, releases={rel.key: rel},
        images={rel.key: (image(),) if images is None else images}, **kw)  # type: ignore[arg-type]


def device(node: int = 0x12, **kw: object) -> Device:
    fields: dict[str, object] = dict(fabric=FABRIC, node=node, vendor_id=P.vendor_id,
                                     product_id=P.product_id, current_version=1)
    fields.update(kw)
    return Device(**fields)  # type: ignore[arg-type]


def query(version: int = 1, **kw: object) -> Query:
    return Query(vendor_id=P.vendor_id, product_id=P.product_id, software_version=version,
                 **kw)  # type: ignore[arg-type]


# --- the happy path --------------------------------------------------------------------------


def test_offer() -> None:
    d = decide(device(), query(), state(), NOW)
    assert d == Decision(QueryStatus.UPDATE_AVAILABLE, d.reason, "offer", "production",
                         release(), image())  # the fast constructor builds a real Decision
    assert d.status is QueryStatus.UPDATE_AVAILABLE and d.code == "offer"
    assert d.version == 2 and d.image == image() and d.delayed_action_time == 0
    assert "1 -> 2" in d.reason and d.channel == "production"
    assert not d.user_consent_needed


def test_user_consent_only_when_release_asks_and_requestor_can() -> None:
    s = state(release(user_consent=True))
    assert decide(device(), query(requestor_can_consent=True), s, NOW).user_consent_needed
    assert not decide(device(), query(requestor_can_consent=False), s, NOW).user_consent_needed
    assert not decide(device(), query(requestor_can_consent=True), state(), NOW) \
        .user_consent_needed


# --- 1. channels -----------------------------------------------------------------------------

BETA = Channel("beta", node_ids=frozenset({0x99}))
GERMAN_HW3 = Channel("de-hw3", locations=frozenset({"DE"}), hardware_versions=(IntRange(3, 5),))
CHANNELS = (Channel("production"), BETA, GERMAN_HW3,
            Channel("fab", fabrics=frozenset({0xAB})),
            Channel("vendor", vendor_ids=frozenset({0xFFF2})),
            Channel("prod2", products=frozenset({Product(0xFFF1, 0x8002)})))


@pytest.mark.parametrize(
    ("dev", "q", "expected"),
    [
        (device(), query(), "production"),
        (device(0x99), query(), "beta"),
        (device(), query(location="DE", hardware_version=4), "de-hw3"),
        (device(), query(location="DE", hardware_version=6), "production"),
        (device(), query(location="FR", hardware_version=4), "production"),
        (device(hardware_version=3, location="DE"), query(), "de-hw3"),  # ledger facts
        (device(fabric=0xAB), query(), "fab"),
        (device(), Query(0xFFF2, 1, 1), "vendor"),
        (device(), Query(0xFFF1, 0x8002, 1), "prod2"),
        (device(0x99, fabric=0xAB), query(), "beta"),  # the first match wins
        (device(channel="fab"), query(), "fab"),  # an explicit assignment wins
        (device(0x99, channel="gone"), query(), "beta"),  # unknown assignment: selectors
    ],
)
def test_channel_for(dev: Device, q: Query, expected: str) -> None:
    assert channel_for(dev, q, CHANNELS) == expected


def test_device_in_another_channel_gets_that_channels_release_only() -> None:
    s = state(channels=CHANNELS)
    d = decide(device(0x99), query(), s, NOW)
    assert d.status is QueryStatus.NOT_AVAILABLE and d.code == "no_release"
    assert "'beta' has no release for FFF1:8001" in d.reason


# --- 2.-4. release, exclusion, status, failures ----------------------------------------------


def test_no_release_for_product() -> None:
    d = decide(device(), Query(0xFFF1, 0x9999, 1), state(), NOW)
    assert (d.status, d.code) == (QueryStatus.NOT_AVAILABLE, "no_release")


@pytest.mark.parametrize("match", [DeviceMatch(0x12), DeviceMatch(0x12, FABRIC)])
def test_excluded(match: DeviceMatch) -> None:
    s = state(release(excluded=(match,), pinned=(match,)))
    d = decide(device(), query(), s, NOW)
    assert (d.status, d.code) == (QueryStatus.NOT_AVAILABLE, "excluded")


def test_exclusion_on_another_fabric_does_not_apply() -> None:
    s = state(release(excluded=(DeviceMatch(0x12, 0xAB),)))
    assert decide(device(), query(), s, NOW).offered


def test_stopped_release_offers_nothing_and_says_why() -> None:
    s = state(release(status=ReleaseStatus.INACTIVE, stop_reason="stopped by operator"))
    d = decide(device(), query(), s, NOW)
    assert (d.status, d.code) == (QueryStatus.NOT_AVAILABLE, "stopped")
    assert "stopped by operator" in d.reason


def test_failures_over_threshold_stop_offers_before_the_yaml_says_so() -> None:
    rel = release(failure=FailurePolicy(10, min_sample=20))
    bad = {KEY: OutcomeCounts(offered=40, applied=17, failed=3)}  # 15 % of 20
    d = decide(device(), query(), state(rel, outcomes=bad), NOW)
    assert d.code == "auto_stopped" and "3 of 20" in d.reason
    few = {KEY: OutcomeCounts(offered=40, applied=5, failed=3)}  # under the minimum sample
    assert decide(device(), query(), state(rel, outcomes=few), NOW).offered


# --- 5. cohort and pins ----------------------------------------------------------------------


def _fleet(n: int) -> list[DeviceRef]:
    return [DeviceRef(FABRIC, i) for i in range(n)]


def test_cohort_selects_exactly_and_explains() -> None:
    rel = release(rollout_percent=10)
    fleet = _fleet(200)
    index = CohortIndex(rel.cohort_seed, 10, known=fleet)
    s = state(rel, cohorts={KEY: index})
    results = [decide(device(r.node), query(), s, NOW) for r in fleet]
    offered = [d for d in results if d.offered]
    assert len(offered) == index.target and 19 <= index.target <= 20  # 10 % of 200, +-1
    out = next(d for d in results if not d.offered)
    assert out.code == "not_in_cohort"
    assert f"{index.target} of 200 known devices selected at 10 %" in out.reason


def test_pinned_device_is_offered_outside_the_cohort() -> None:
    rel = release(rollout_percent=1)
    fleet = _fleet(50)
    index = CohortIndex(rel.cohort_seed, 1, known=fleet)
    outside = next(r for r in fleet if not index.is_selected(r))
    s = state(rel, cohorts={KEY: index})
    assert decide(device(outside.node), query(), s, NOW).code == "not_in_cohort"
    pinned = state(dataclasses.replace(rel, pinned=(DeviceMatch(outside.node),)),
                   cohorts={KEY: index})
    d = decide(device(outside.node), query(), pinned, NOW)
    assert d.offered and "pinned" in d.reason and d.pinned
    # A pin is not a cohort offer: the cohort refuses to record it, the count stays exact.
    assert not index.mark_offered(outside)
    assert not decide(device(index.selected().pop().node), query(), pinned, NOW).pinned


def test_without_a_ledger_the_hash_decides() -> None:
    rel = release(rollout_percent=50)
    results = Counter(decide(device(i), query(), state(rel), NOW).offered for i in range(2000))
    assert 900 < results[True] < 1100
    d = next(decide(device(i), query(), state(rel), NOW) for i in range(2000)
             if not decide(device(i), query(), state(rel), NOW).offered)
    assert "hash only" in d.reason


def test_index_of_an_old_seed_is_not_used() -> None:
    rel = release(rollout_percent=50)
    stale = CohortIndex("00" * 16, 50, known=_fleet(10))
    d = decide(device(3), query(), state(rel, cohorts={KEY: stale}), NOW)
    assert "hash only" in d.reason


def test_stop_resume_is_the_identical_set_and_same_set_overwrite_too() -> None:
    rel = release(rollout_percent=25)
    fleet = _fleet(300)
    index = CohortIndex(rel.cohort_seed, 25, known=fleet)

    def offered(r: Release, images: tuple[ImageInfo, ...] = (image(),)) -> set[int]:
        s = state(r, images=images, cohorts={KEY: index})
        return {ref.node for ref in fleet if decide(device(ref.node), query(), s, NOW).offered}

    before = offered(rel)
    when = RELEASED + timedelta(days=1)
    stopped = t.stop(rel, now=when)
    assert offered(stopped) == set()
    assert offered(t.resume(stopped, now=when)) == before
    same = t.release_same_set(rel, image="light-3.ota", version=3, now=when)
    assert offered(same, (image(3),)) == before
    new = t.release_new_set(rel, channel="production", product=P, image="light-3.ota",
                            version=3, percent=25, now=when)
    fresh = CohortIndex(new.cohort_seed, 25, known=fleet)
    s = state(new, images=(image(3),), cohorts={KEY: fresh})
    new_set = {r.node for r in fleet if decide(device(r.node), query(), s, NOW).offered}
    assert abs(len(new_set) - 75) <= 1 and abs(len(before) - 75) <= 1 and new_set != before


# --- 6. images -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "rel_kw", "q", "offered_version", "words"),
    [
        ((image(2),), {}, query(2), None, "already runs version 2"),
        ((image(2),), {}, query(3), None, "would downgrade"),
        ((image(2),), {"allow_downgrade": True}, query(3), 2, ""),
        ((image(2, min_applicable=5),), {}, query(1), None, "applies to versions 5"),
        ((image(2, max_applicable=0),), {}, query(1), None, "applies to versions"),
        ((image(2, min_applicable=1, max_applicable=1),), {}, query(1), 2, ""),
        ((image(2, product_id=0x8002),), {}, query(1), None, "is for FFF1:8002"),
        ((), {}, query(1), None, "not available in the firmware folder"),
        ((), {"source": Source.DCL, "image": None}, query(1), None, "DCL lists no valid"),
        ((image(2), image(4), image(3, max_applicable=0)), {"source": Source.DCL,
                                                           "image": None}, query(1), 4, ""),
        ((image(2),), {"hardware_versions": (IntRange(3, 5),)}, query(1, hardware_version=2),
         None, "hardware versions 3-5"),
        ((image(2),), {"hardware_versions": (IntRange(3, 5),)}, query(1), None,
         "hardware versions 3-5"),
        ((image(2),), {"hardware_versions": (IntRange(3, 5),)}, query(1, hardware_version=4),
         2, ""),
    ],
)
def test_image_applicability(images: tuple[ImageInfo, ...], rel_kw: dict[str, object],
                             q: Query, offered_version: int | None, words: str) -> None:
    d = decide(device(), q, state(release(**rel_kw), images=images), NOW)
    if offered_version is None:
        assert (d.status, d.code) == (QueryStatus.NOT_AVAILABLE, "no_image")
        assert words in d.reason
    else:
        assert d.offered and d.version == offered_version


# --- 7. protocols, 8. busy -------------------------------------------------------------------


def test_requestor_without_bdx_sync() -> None:
    d = decide(device(), query(protocols_supported=(1, 2)), state(), NOW)
    assert d.status is QueryStatus.DOWNLOAD_PROTOCOL_NOT_SUPPORTED and "BDX" in d.reason


def test_busy_when_the_cap_is_hit_with_a_spread_delay() -> None:
    policy = BusyPolicy(max_transfers=4, base=120, spread=600)
    s = state(active_transfers=4, busy=policy)
    delays = []
    for node in range(1000):
        d = decide(device(node), query(), s, NOW)
        assert d.status is QueryStatus.BUSY and d.code == "busy"
        assert d.image is not None and "cap is 4" in d.reason
        assert 120 <= d.delayed_action_time <= 720
        assert d.delayed_action_time == decide(device(node), query(), s, NOW + 5) \
            .delayed_action_time  # deterministic per device
        delays.append(d.delayed_action_time)
    # Spread over the window: every 60 s slice gets a share, none gets a wave.
    slices = Counter((x - 120) // 60 for x in delays)
    assert len(slices) >= 10 and max(slices.values()) < 160
    assert decide(device(), query(), state(active_transfers=3, busy=policy), NOW).offered


def test_a_device_already_transferring_is_not_refused_by_the_cap() -> None:
    s = state(active_transfers=4, busy=BusyPolicy(max_transfers=4),
              transferring=frozenset({DeviceRef(FABRIC, 0x12)}))
    assert decide(device(), query(), s, NOW).offered


def test_busy_delay_without_spread_is_the_base() -> None:
    assert busy_delay(DeviceRef(1, 2), 120, 0) == 120


# --- every outcome has a reason; decide never raises -----------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    node=st.integers(0, 2**64 - 1),
    version=st.integers(0, 10),
    percent=st.integers(1, 100),
    status=st.sampled_from(ReleaseStatus),
    versions=st.lists(st.integers(0, 10), max_size=3),
    protocols=st.lists(st.integers(0, 3), max_size=4),
    active=st.integers(0, 5),
    hw=st.none() | st.integers(0, 5),
)
def test_every_decision_has_a_reason(node: int, version: int, percent: int,
                                     status: ReleaseStatus, versions: list[int],
                                     protocols: list[int], active: int, hw: int | None) -> None:
    rel = release(rollout_percent=percent, status=status,
                  stop_reason=None if status is ReleaseStatus.LIVE else "x")
    s = state(rel, images=tuple(image(v) for v in versions), active_transfers=active,
              busy=BusyPolicy(max_transfers=3))
    d = decide(device(node), query(version, protocols_supported=tuple(protocols),
                                   hardware_version=hw), s, NOW)
    assert d.reason and d.code
    if d.offered:
        assert d.image is not None and d.version != version and status is ReleaseStatus.LIVE
        assert d.version is not None and d.version > version
    if d.status is QueryStatus.BUSY:
        assert d.delayed_action_time >= 120


# --- automatic transitions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "stops"),
    [
        (OutcomeCounts(applied=19, failed=0), False),  # under the minimum sample
        (OutcomeCounts(applied=10, failed=9), False),  # under the minimum sample
        (OutcomeCounts(applied=19, failed=1), False),  # 5 %: at the threshold, not above
        (OutcomeCounts(applied=18, failed=2), True),  # 10 %
        (OutcomeCounts(applied=1000, failed=53), True),
    ],
)
def test_failure_verdict(counts: OutcomeCounts, stops: bool) -> None:
    rel = release(failure=FailurePolicy(5, min_sample=20))
    assert (failure_verdict(rel, counts) is not None) == stops
    assert failure_verdict(release(), counts) is None  # no policy: never


@given(st.integers(0, 500), st.integers(0, 500), st.floats(0, 100), st.integers(1, 100))
def test_failure_verdict_is_threshold_over_sample(applied: int, failed: int, threshold: float,
                                                  sample: int) -> None:
    rel = release(failure=FailurePolicy(threshold, sample))
    verdict = failure_verdict(rel, OutcomeCounts(applied=applied, failed=failed))
    finished = applied + failed
    expected = finished >= sample and failed * 100 > threshold * finished
    assert (verdict is not None) == expected


def test_ramp_advances_after_soak_while_failures_stay_low() -> None:
    rel = release(rollout_percent=1, failure=FailurePolicy(5, 20),
                  ramp=(RampStep(10, 3600), RampStep(50, 86400), RampStep(100, 86400)))
    good = OutcomeCounts(applied=10)
    assert advance_ramp(rel, good, RELEASED + timedelta(minutes=59)) is None
    step1 = advance_ramp(rel, good, RELEASED + timedelta(hours=1))
    assert step1 is not None and step1.rollout_percent == 10
    assert step1.cohort_seed == rel.cohort_seed  # an increase: the same devices plus more
    when = RELEASED + timedelta(hours=1)
    assert advance_ramp(step1, good, when + timedelta(hours=23)) is None
    step2 = advance_ramp(step1, good, when + timedelta(days=1))
    assert step2 is not None and step2.rollout_percent == 50
    # Any failure share over the threshold holds the ramp, even below the minimum sample.
    assert advance_ramp(step2, OutcomeCounts(applied=9, failed=1),
                        when + timedelta(days=5)) is None
    step3 = advance_ramp(step2, good, when + timedelta(days=5))
    assert step3 is not None and step3.rollout_percent == 100
    assert advance_ramp(step3, good, when + timedelta(days=50)) is None
    stopped = dataclasses.replace(rel, status=ReleaseStatus.INACTIVE, stop_reason="x")
    assert advance_ramp(stopped, good, when + timedelta(days=5)) is None


# --- maintenance windows and ApplyUpdate -----------------------------------------------------


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("window", "now", "wait"),
    [
        (MaintenanceWindow(time(1), time(5)), "2027-01-15T02:00:00+00:00", 0),
        (MaintenanceWindow(time(1), time(5)), "2027-01-15T00:30:00+00:00", 1800),
        (MaintenanceWindow(time(1), time(5)), "2027-01-15T05:00:00+00:00", 20 * 3600),
        (MaintenanceWindow(time(22), time(2)), "2027-01-15T23:30:00+00:00", 0),
        (MaintenanceWindow(time(22), time(2)), "2027-01-16T01:59:00+00:00", 0),
        (MaintenanceWindow(time(22), time(2)), "2027-01-16T02:00:00+00:00", 20 * 3600),
        # 2027-01-15 is a Friday; a Monday-only window waits for Monday 01:00.
        (MaintenanceWindow(time(1), time(5), days=frozenset({1})), "2027-01-15T02:00:00+00:00",
         (2 * 24 + 23) * 3600),
        # Berlin is UTC+1 in January: 01:00 local is 00:00 UTC.
        (MaintenanceWindow(time(1), time(5), "Europe/Berlin"), "2027-01-15T00:30:00+00:00", 0),
        (MaintenanceWindow(time(1), time(5), "Europe/Berlin"), "2027-01-14T23:30:00+00:00",
         1800),
    ],
)
def test_window_wait(window: MaintenanceWindow, now: str, wait: int) -> None:
    assert window_wait(window, _ts(now)) == wait


@given(st.integers(0, 23), st.integers(0, 23), st.floats(1.7e9, 1.9e9),
       st.frozensets(st.integers(1, 7)))
def test_window_wait_lands_inside_the_window(start: int, end: int, now: float,
                                             days: frozenset[int]) -> None:
    if start == end:
        return
    window = MaintenanceWindow(time(start), time(end), "Europe/Berlin", days)
    wait = window_wait(window, now)
    assert 0 <= wait <= 8 * 86400
    assert window_wait(window, now + wait) == 0


def test_apply_update() -> None:
    assert apply_update(release(), NOW).action is ApplyAction.PROCEED
    windowed = release(maintenance_window=MaintenanceWindow(time(1), time(5)))
    answer = apply_update(windowed, _ts("2027-01-15T00:00:00+00:00"))
    assert answer.action is ApplyAction.AWAIT_NEXT_ACTION and answer.delayed_action_time == 3600
    # An operator's stop lets a downloaded image apply; an auto-stop discontinues.
    stopped = t.stop(release(), now=RELEASED)
    assert apply_update(stopped, NOW).action is ApplyAction.PROCEED
    failed = t.auto_stop(release(), reason="3 of 20 failed", now=RELEASED)
    answer = apply_update(failed, NOW)
    assert answer.action is ApplyAction.DISCONTINUE and "3 of 20" in answer.reason
    assert apply_update(None, NOW).action is ApplyAction.DISCONTINUE
    # Friday 02:00 to a Monday-only window: 71 h away, asked in steps of at most 24 h.
    monday = release(maintenance_window=MaintenanceWindow(time(1), time(5), days=frozenset({1})))
    answer = apply_update(monday, _ts("2027-01-15T02:00:00+00:00"))
    assert answer.action is ApplyAction.AWAIT_NEXT_ACTION
    assert answer.delayed_action_time == 86400 and "255600 s" in answer.reason


@settings(max_examples=60, deadline=None)
@given(
    seed=st.binary(min_size=16, max_size=16).map(bytes.hex),
    percent=st.integers(1, 99),
    more=st.integers(1, 100),
    nodes=st.lists(st.integers(0, 2**64 - 1), unique=True, min_size=1, max_size=80),
    asked=st.data(),
)
def test_walk_of_operations_keeps_the_invariants(seed: str, percent: int, more: int,
                                                 nodes: list[int],
                                                 asked: st.DataObject) -> None:
    """release -> some devices ask -> stop -> resume -> increase -> same set: the offered
    devices never drop out, resume and same set are the identical set, increase a superset."""
    rel = release(rollout_percent=percent, cohort_seed=seed)
    index = CohortIndex(seed, percent, known=[DeviceRef(FABRIC, n) for n in nodes])

    def offered_now(r: Release, images: tuple[ImageInfo, ...] = (image(),)) -> set[int]:
        s = state(r, images=images, cohorts={KEY: index})
        return {n for n in nodes if decide(device(n), query(), s, NOW).offered}

    first = offered_now(rel)
    for n in asked.draw(st.lists(st.sampled_from(nodes), unique=True, max_size=20)):
        if n in first:
            assert index.mark_offered(DeviceRef(FABRIC, n))
    assert offered_now(rel) == first
    when = RELEASED + timedelta(days=1)
    stopped = t.stop(rel, now=when)
    assert offered_now(stopped) == set()
    resumed = t.resume(stopped, now=when)
    assert offered_now(resumed) == first
    bigger = t.increase(resumed, percent=min(100, percent + more), now=when)
    index.set_percent(bigger.rollout_percent)
    grown = offered_now(bigger)
    assert first <= grown
    assert abs(len(grown) - bigger.rollout_percent * len(nodes) / 100) <= 1
    same = t.release_same_set(bigger, image="light-3.ota", version=3, now=when)
    assert offered_now(same, (image(3),)) == grown
