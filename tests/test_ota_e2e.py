"""The OTA provider end to end, in memory: the provider node (CASE, IM, BDX, policy engine,
store, console) and emulated requestors built from our own stack, time stepped by hand.
The TC-SU-3.1..3.4 assertions of the test plan are checked where they apply."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ota_world import CERT_NOW, KEY, PID, VID, World, sha256

from matter_ota.bdx.client import start_download
from matter_ota.bdx.receiver import ReceiverState, ReceiverTransfer
from matter_ota.bdx.sender import TransferFailed, TransferStarted
from matter_ota.clusters.ota_provider import (
    ApplyUpdateAction,
    ApplyUpdateRequest,
    NotifyUpdateApplied,
    OtaProviderCluster,
    QueryStatus,
)
from matter_ota.emulator.fleet import PROVIDER_NODE_ID
from matter_ota.emulator.invoke import invoke
from matter_ota.emulator.requestor import Behaviour, Stage
from matter_ota.im.messages import Status
from matter_ota.provider.core import ProviderSettings
from matter_ota.provider.uri import check_image_uri


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def counts(w: World, version: int) -> tuple[int, int, int, int]:
    c = w.store.outcome_counts("production", VID, PID, version)
    return c.offered, c.downloading, c.applied, c.failed


def transfers(w: World) -> list[tuple[str, str]]:
    rows = w.store._read("SELECT state, reason FROM transfers ORDER BY id")
    return [(str(r[0]), str(r[1])) for r in rows]


def test_offer_download_apply_notify(world: World) -> None:
    image = world.release(2)
    r = world.requestor(1)
    world.start(r)
    world.fleet.run()
    assert (r.stage, r.result, r.error) == (Stage.DONE, "updated", None)
    [answer] = r.responses
    assert answer.status == QueryStatus.UPDATE_AVAILABLE
    assert answer.delayed_action_time is None  # only with Busy
    # TC-SU-3.1: bdx scheme, the provider's node id in 16 upper-case hex, 24+ characters
    uri = answer.image_uri or ""
    assert uri == f"bdx://{PROVIDER_NODE_ID:016X}/fw-2.ota" and len(uri) >= 24
    assert check_image_uri(uri, PROVIDER_NODE_ID) == "fw-2.ota"
    assert answer.software_version == 2 and answer.software_version_string == "2.0"
    assert answer.update_token is not None and 8 <= len(answer.update_token) <= 32
    assert answer.user_consent_needed is None
    assert r.image_sha256 == sha256(image) and r.image_size == len(image)
    assert [a.action for a in r.applies] == [ApplyUpdateAction.PROCEED]
    assert r.notified == [2] and r.version == 2
    assert counts(world, 2) == (0, 0, 1, 0)
    assert transfers(world) == [("completed", "")]
    device = world.store.device(f"{world.fleet.provider_fabric.compressed_fabric_id.hex()}"
                                .upper(), r.node_id)
    assert device is not None and device.last_result == "offer" and device.channel == "production"
    # up to date now: the next query is NotAvailable
    r.start(world.fleet.now)
    world.fleet.run()
    assert r.result == "not_available" and r.responses[-1].update_token is None


def test_not_available_without_release_or_when_current(world: World) -> None:
    r = world.requestor(1)
    world.start(r)
    world.fleet.run()
    assert r.result == "not_available"
    assert [a.status for a in r.responses] == [QueryStatus.NOT_AVAILABLE]
    world.release(2)
    current = world.requestor(2)
    world.start(current)
    world.fleet.run()
    assert current.result == "not_available" and current.downloads == 0


def test_download_protocol_not_supported(world: World) -> None:
    world.release(2)
    r = world.requestor(1, protocols=(2,))  # HTTPS only
    world.start(r)
    world.fleet.run()
    assert r.responses[0].status == QueryStatus.DOWNLOAD_PROTOCOL_NOT_SUPPORTED


def test_busy_then_update_available(tmp_path: Path) -> None:
    w = World(tmp_path, max_transfers=1)
    try:
        w.release(2)
        stuck = w.requestor(1, Behaviour(stall_after_bytes=2000))
        w.start(stuck)
        w.fleet.run(until=5, settled=False)
        assert stuck.stage is Stage.DOWNLOADING and len(w.provider.transfers or ()) == 1
        r = w.requestor(1)
        w.start(r)
        w.fleet.advance(3000)
        first = r.responses[0]
        # TC-SU-3.2: Busy with a DelayedActionTime, then UpdateAvailable on a later query
        assert first.status == QueryStatus.BUSY and first.image_uri is None
        assert first.delayed_action_time is not None and first.delayed_action_time >= 120
        assert r.responses[-1].status == QueryStatus.UPDATE_AVAILABLE
        assert r.result == "updated"
        # the stalled transfer ended by the provider's idle timeout (>= 5 minutes)
        failed = [e for e in w.fleet.provider_events if isinstance(e, TransferFailed)]
        assert [e.reason.value for e in failed] == ["idle_timeout"]
        assert transfers(w)[0][0] == "failed" and "idle_timeout" in transfers(w)[0][1]
    finally:
        w.close()


def test_busy_retries_are_spread_over_the_fleet(tmp_path: Path) -> None:
    w = World(tmp_path, max_transfers=1)
    try:
        w.release(2)
        stuck = w.requestor(1, Behaviour(stall_after_bytes=2000))
        w.start(stuck)
        w.fleet.run(until=5, settled=False)
        waiting = [w.requestor(1) for _ in range(8)]
        w.start(*waiting)
        w.fleet.run(until=10, settled=False)
        delays = [r.responses[0].delayed_action_time for r in waiting]
        assert all(r.responses[0].status == QueryStatus.BUSY for r in waiting)
        assert all(d is not None and 120 <= d <= 720 for d in delays)
        assert len(set(delays)) >= 6, delays  # each device its own share of the spread
    finally:
        w.close()


def test_token_is_bound_to_the_device(world: World) -> None:
    world.release(2)
    a = world.requestor(1, Behaviour(never_notifies=True))
    other = world.requestor(2)  # up to date: a session, no offer
    world.start(a, other)
    world.fleet.run()
    token = a.responses[0].update_token
    assert token is not None and other.session is not None
    fleet = world.fleet
    apply = invoke(other.node, other.session, 0, OtaProviderCluster.ID, 0x02,
                   ApplyUpdateRequest(update_token=token, new_version=2).to_value(), fleet.now)
    notify = invoke(other.node, other.session, 0, OtaProviderCluster.ID, 0x04,
                    NotifyUpdateApplied(update_token=token, software_version=2).to_value(),
                    fleet.now)
    fleet.run(until=fleet.now + 1, settled=False)
    assert apply.done and apply.status == Status.INVALID_COMMAND and apply.fields is None
    assert notify.done and notify.status == Status.INVALID_COMMAND
    assert counts(world, 2)[2] == 0  # nothing recorded as applied for the other device


def test_killed_transfer_then_a_new_query_starts_a_new_transfer(world: World) -> None:
    image = world.release(2, size=60_000)
    r = world.requestor(1, Behaviour(kill_after_bytes=5000, retry_delay=10))
    world.start(r)
    world.fleet.run()
    assert r.result == "updated" and r.downloads == 2
    assert r.image_sha256 == sha256(image)
    assert len(r.responses) == 2 and r.responses[0].update_token != r.responses[1].update_token
    started = [e for e in world.fleet.provider_events if isinstance(e, TransferStarted)]
    assert len(started) == 2 and started[0].transfer_id != started[1].transfer_id
    states = [s for s, _ in transfers(world)]
    assert states == ["failed", "completed"]
    assert "peer_status" in transfers(world)[0][1]
    assert counts(world, 2) == (0, 0, 1, 0)  # the retry that worked is the device's outcome


def test_designator_of_an_image_not_offered_is_unknown(world: World) -> None:
    world.release(2)
    (world.root / "firmware" / "secret.ota").write_bytes(b"x" * 100)
    r = world.requestor(2)  # up to date: nothing offered to it
    world.start(r)
    world.fleet.run()
    got: list[bytes] = []
    assert r.session is not None
    downloads = [start_download(r.node, r.session, ReceiverTransfer(name, _Sink(got)),
                                world.fleet.now)
                 for name in (b"fw-2.ota", b"secret.ota", b"../provider.yaml")]
    world.fleet.run(until=world.fleet.now + 1, settled=False)
    assert got == []  # not one byte of an image the device was not offered
    assert all(d.receiver.state is ReceiverState.FAILED for d in downloads)
    assert not [e for e in world.fleet.provider_events if isinstance(e, TransferStarted)]


class _Sink:
    def __init__(self, got: list[bytes]) -> None:
        self.got = got

    def write(self, data: bytes, /) -> int:
        self.got.append(data)
        return len(data)


def _window_in(seconds: int) -> dict[str, object]:
    """A one-hour maintenance window opening ``seconds`` after the test's clock starts."""
    start = (CERT_NOW + seconds) % 86400
    end = (start + 3600) % 86400
    return {"maintenance_window": {
        "start": f"{start // 3600:02d}:{start % 3600 // 60:02d}",
        "end": f"{end // 3600:02d}:{end % 3600 // 60:02d}", "timezone": "UTC"}}


def test_apply_await_next_action_then_proceed(world: World) -> None:
    world.release(2, extra=_window_in(2 * 3600))
    r = world.requestor(1)
    world.start(r)
    world.fleet.run()
    assert r.result == "updated"
    first, last = r.applies[0], r.applies[-1]
    # TC-SU-3.4: AwaitNextAction with a delay, then Proceed when asked again
    assert first.action == ApplyUpdateAction.AWAIT_NEXT_ACTION
    assert 3600 < first.delayed_action_time <= 2 * 3600
    assert last.action == ApplyUpdateAction.PROCEED and last.delayed_action_time == 0
    assert counts(world, 2) == (0, 0, 1, 0)


def test_discontinue_then_a_fresh_query_restarts_the_update(world: World) -> None:
    world.release(2, extra=_window_in(2 * 3600))
    r = world.requestor(1)
    world.start(r)
    world.fleet.run(until=world.fleet.now + 600, settled=False)
    assert r.stage is Stage.WAITING and r.applies[0].action == ApplyUpdateAction.AWAIT_NEXT_ACTION
    image3 = world.release(3, same_set=True)  # same devices, new image, window gone
    world.fleet.run()
    assert r.result == "discontinued"
    assert r.applies[-1].action == ApplyUpdateAction.DISCONTINUE
    r.start(world.fleet.now)  # a fresh QueryImage restarts the whole update
    world.fleet.run()
    assert r.result == "updated" and r.version == 3 and r.image_sha256 == sha256(image3)


def test_stop_mid_rollout(world: World) -> None:
    world.release(2)
    early = [world.requestor(1) for _ in range(5)]
    world.start(*early)
    world.fleet.run()
    assert all(r.result == "updated" for r in early)
    world.console.stop("production", None)
    world.reload()
    late = [world.requestor(1) for _ in range(5)]
    world.start(*late)
    world.fleet.run()
    assert all(r.result == "not_available" and r.downloads == 0 for r in late)
    assert [r.version for r in early] == [2] * 5  # devices that got it keep it
    assert [e.action for e in world.store.history()][-1] == "stop"


def test_hundred_devices_at_ten_percent(world: World) -> None:
    world.release(2, percent=10)
    fleet = [world.requestor(1) for _ in range(100)]
    world.start(*fleet)
    world.fleet.run()
    offered = {r.node_id for r in fleet if r.downloads}
    # devices selected only once more had checked in ask again later and are offered then
    world.start(*[r for r in fleet if not r.downloads])
    world.fleet.run()
    offered |= {r.node_id for r in fleet if r.downloads}
    assert 9 <= len(offered) <= 11, len(offered)
    assert all(r.result == "updated" for r in fleet if r.node_id in offered)
    assert all(r.version == 1 for r in fleet if r.node_id not in offered)
    assert counts(world, 2)[2] == len(offered)


def test_consent_needed_only_when_the_requestor_can_consent(world: World) -> None:
    world.release(2, extra={"user_consent": True})
    yes, no = world.requestor(1, can_consent=True), world.requestor(1)
    world.start(yes, no)
    world.fleet.run()
    assert yes.responses[0].user_consent_needed is True
    assert no.responses[0].user_consent_needed is None


def test_no_notify_within_the_deadline_is_a_failure(tmp_path: Path) -> None:
    w = World(tmp_path, settings=ProviderSettings(notify_timeout=600))
    try:
        w.release(2)
        r = w.requestor(1, Behaviour(never_notifies=True))
        w.start(r)
        w.fleet.run()
        # downloaded, told to proceed, never heard of again: still "downloading" until due
        assert r.result == "updated_silently" and counts(w, 2) == (0, 1, 0, 0)
        w.fleet.advance(601)
        assert counts(w, 2) == (0, 0, 0, 1)
        reason = w.store._read("SELECT reason FROM outcomes")[0][0]
        assert "no NotifyUpdateApplied" in reason
    finally:
        w.close()


def test_back_on_the_old_version_fails_and_auto_stops_the_release(world: World) -> None:
    world.release(2, extra={"failure_threshold": {"percent": 10, "min_sample": 3}})
    bad = [world.requestor(1, Behaviour(boots_old_version=True)) for _ in range(3)]
    world.start(*bad)
    world.fleet.run()
    # each came back on version 1 and asked again: the first such query records the failure
    assert counts(world, 2)[3] == 3
    doc = yaml.safe_load((world.root / "releases.yaml").read_text())
    row = doc["releases"][0]
    assert row["status"] == "INACTIVE" and row["stop_reason"].startswith("auto-stop: ")
    audit = world.store.history()[-1]
    assert audit.action == "auto-stop" and "3 of 3 updates failed" in audit.reason
    world.reload()
    late = world.requestor(1)
    world.start(late)
    world.fleet.run()
    assert late.result == "not_available"


def test_apply_and_notify_after_the_provider_forgot_the_update(world: World) -> None:
    """A daemon restart between the download and the apply: the token in the store and the
    device's ledger row name the release's image again."""
    world.release(2, extra=_window_in(2 * 3600))
    r = world.requestor(1)
    world.start(r)
    world.fleet.run(until=world.fleet.now + 600, settled=False)
    assert r.stage is Stage.WAITING and r.applies[0].action == ApplyUpdateAction.AWAIT_NEXT_ACTION
    world.provider.updates.clear()  # what a restart loses
    world.fleet.run()
    assert r.result == "updated" and r.applies[-1].action == ApplyUpdateAction.PROCEED
    assert counts(world, 2) == (0, 0, 1, 0)


def test_a_pinned_device_is_offered_but_not_counted_as_a_cohort_offer(world: World) -> None:
    from matter_ota.emulator.fleet import FIRST_REQUESTOR_NODE_ID

    world.release(2, percent=1, extra={"pinned": [FIRST_REQUESTOR_NODE_ID]})
    pinned = world.requestor(1)
    assert pinned.node_id == FIRST_REQUESTOR_NODE_ID
    world.start(pinned)
    world.fleet.run()
    assert pinned.result == "updated"
    release = world.state().releases[KEY]
    _, offered = world.store.cohort_devices("production", VID, PID, release.cohort_seed)
    assert offered == []  # policy: pinned offers are not cohort offers
    assert counts(world, 2)[2] == 1
