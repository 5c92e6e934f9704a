"""ProviderService (what the OTA handlers read, swapped whole on reload) and the Daemon's task
group in-process: CloseSession to every peer at stop, reload on request, companions."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import anyio
import pytest
from msg_pair import make_node, secure_pair

from matter_ota.config import Config, load_config
from matter_ota.messaging.session import Address
from matter_ota.node import SessionClosed
from matter_ota.runtime.service import (
    HEARTBEAT_INTERVAL,
    Daemon,
    ProviderService,
    another_daemon,
    load_provider_or_defaults,
    load_startup_config,
    restart_needed,
    startup_digest,
)
from matter_ota.runtime.systemd import Notifier
from matter_ota.runtime.udp import UdpTransport
from matter_ota.store import Store
from matter_ota.yamlnodes import ConfigError

RELEASE = """\
releases:
  - channel: production
    product: "FFF1:8001"
    image: light.ota
    status: LIVE
    rollout_percent: {percent}
    cohort_seed: "00112233445566778899aabbccddeeff"
    released_at: 2026-11-29T18:00:00Z
"""


def site(tmp_path: Path, percent: int = 10) -> Path:
    provider = tmp_path / "provider.yaml"
    provider.write_text("state_dir: state\n")
    (tmp_path / "releases.yaml").write_text(RELEASE.format(percent=percent))
    return provider


def test_apply_swaps_state_and_records_generation(tmp_path: Path) -> None:
    provider = site(tmp_path)
    with Store.open(tmp_path / "state") as store:
        service = ProviderService(load_config(provider), store, digest="a" * 64)
        first = service.current()
        assert first.generation == 1
        key = next(iter(first.state.releases))
        assert first.state.releases[key].rollout_percent == 10
        site(tmp_path, percent=30)
        store.daemon_started(os.getpid(), time.time())
        heard: list[int] = []
        service.subscribe(lambda s: heard.append(s.generation))
        service.subscribe(lambda s: 1 / 0)  # a broken listener is logged, nothing more
        served = service.apply(load_config(provider), "b" * 64)
        assert heard == [2]
        assert served is service.current() and served.generation == 2
        assert service.current_state().releases[key].rollout_percent == 30
        assert first.state.releases[key].rollout_percent == 10  # the old snapshot is intact
        status = store.daemon_status()
        assert status is not None
        assert (status.config_generation, status.config_digest) == (2, "b" * 64)
        # The same files again (a bad edit undone): the same generation.
        assert service.apply(load_config(provider), "b" * 64).generation == 2


def test_restart_needed_names_the_keys(tmp_path: Path) -> None:
    provider = site(tmp_path)
    old = load_config(provider).provider
    provider.write_text("state_dir: state\nnetwork:\n  port: 6000\nlimits:\n"
                        "  max_concurrent_transfers: 3\n")
    new = load_config(provider).provider
    assert restart_needed(old, new) == ["network"]  # limits apply live
    provider.write_text("state_dir: other\nlog:\n  format: json\n  level: debug\n")
    assert restart_needed(old, load_config(provider).provider) == ["state_dir", "log.format"]


def test_start_with_an_invalid_releases_file_serves_the_last_valid(tmp_path: Path) -> None:
    provider_path = site(tmp_path)
    provider = load_provider_or_defaults(provider_path, explicit=True)
    releases = tmp_path / "releases.yaml"
    with Store.open(tmp_path / "state") as store:
        good = releases.read_text()
        releases.write_text(good.replace("rollout_percent: 10", "rollout_percent: 101"))
        with pytest.raises(ConfigError):
            load_startup_config(provider, store)  # nothing valid known yet
        store.save_valid_config(str(releases), good, time.time())
        config, refused, text = load_startup_config(provider, store)
        assert text == good and refused is not None
        assert (refused.file, refused.line) == (str(releases), 6)
        assert config.releases.releases[0].rollout_percent == 10


def test_defaults_without_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    provider = load_provider_or_defaults(tmp_path / "etc" / "provider.yaml", explicit=False)
    assert provider.state_dir == tmp_path / "state" and provider.network.port == 5540
    with pytest.raises(ConfigError, match="no such file"):
        load_provider_or_defaults(tmp_path / "etc" / "provider.yaml", explicit=True)


def test_another_daemon(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert another_daemon(store) is None
        store.daemon_started(os.getpid(), time.time())
        assert another_daemon(store) is None  # ourselves
        child = os.fork()
        if child == 0:  # pragma: no cover - the child only sleeps
            time.sleep(5)
            os._exit(0)
        try:
            now = time.time()
            store.daemon_started(child, now)
            assert another_daemon(store, now) == child
            assert another_daemon(store, now + 4 * HEARTBEAT_INTERVAL) is None  # stale
            store.daemon_stopped(now)
            assert another_daemon(store, now) is None
        finally:
            os.kill(child, 9)
            os.waitpid(child, 0)


def test_daemon_closes_sessions_and_runs_companions(tmp_path: Path) -> None:
    provider = site(tmp_path)
    client, server = make_node(), make_node()
    _c, s = secure_pair(client, server)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    s.peer_addr = peer.getsockname()
    seen: list[Address] = []
    with Store.open(tmp_path / "state") as store:
        config = load_config(provider)
        service = ProviderService(config, store, digest=startup_digest(config, None))
        transport = UdpTransport(server, host="127.0.0.1", port=0)
        daemon = Daemon(service, server, transport, config_path=provider, config_explicit=True,
                        notifier=Notifier(None))

        async def companion(address: Address) -> None:
            seen.append(address)
            await anyio.sleep_forever()

        daemon.companions.append(companion)
        stopped: list[int] = []
        service.at_stop(lambda now: stopped.append(len(server.sessions)))
        service.at_stop(lambda now: 1 / 0)  # logged; the sessions still close

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(daemon.run)
                with anyio.fail_after(5):
                    while not seen:
                        await anyio.sleep(0.01)
                await anyio.sleep(0.1)
                assert service.current().generation == 1  # nothing changed since the load
                site(tmp_path, percent=40)
                daemon.reload("test")  # at once, no polling wait
                with anyio.fail_after(2):
                    while service.current().generation < 2:
                        await anyio.sleep(0.01)
                key = next(iter(service.current_state().releases))
                assert service.current_state().releases[key].rollout_percent == 40
                daemon.stop("test")

        anyio.run(main)
        status = store.daemon_status()
        assert status is not None and status.state == "stopped"
    assert seen == [daemon.address]
    assert stopped == [1]  # the hooks ran before the sessions closed
    data, addr = peer.recvfrom(2048)
    peer.close()
    client.datagram_received(data, addr, 1.0)
    events = []
    while (event := client.next_event()) is not None:
        events.append(event)
    assert [e.reason for e in events if isinstance(e, SessionClosed)] == ["peer_closed"]
    assert len(server.sessions) == 0
    assert isinstance(service.current_config(), Config)


def test_reload_keeps_the_cohort_index_of_an_unchanged_seed(tmp_path: Path) -> None:
    from matter_ota.facts import build_state
    from matter_ota.store import DeviceRecord

    provider = site(tmp_path)
    with Store.open(tmp_path / "state") as store:
        store.import_devices(DeviceRecord("2906C908D115D362", n, 0xFFF1, 0x8001, 1, None,
                                          "production", 0.0, 0.0, "") for n in range(1, 201))
        service = ProviderService(load_config(provider), store)
        key = next(iter(service.current_state().releases))
        first = service.current_state().cohorts[key]
        assert first.percent == 10 and abs(first.selected_count - 20) <= 1
        site(tmp_path, percent=30)
        service.apply(load_config(provider), "x")
        again = service.current_state().cohorts[key]
        assert again is first and again.percent == 30  # no ledger read, no rehash
        config = load_config(provider)
        fresh = build_state(config.provider, config.releases, store).cohorts[key]
        assert again.selected() == fresh.selected()  # the same selection as a full build
        (tmp_path / "releases.yaml").write_text(RELEASE.format(percent=30).replace(
            "00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100"))
        service.apply(load_config(provider), "y")
        assert service.current_state().cohorts[key] is not first  # a new seed: rebuilt


def test_last_valid_text_found_whatever_the_path_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scripts/run gives the daemon config/provider.yaml (relative); an operator's CLI may
    name /abs/config/provider.yaml: both find the same last valid releases text."""
    (tmp_path / "config").mkdir()
    monkeypatch.chdir(tmp_path)
    with Store.open(tmp_path / "state") as store:
        store.save_valid_config("config/releases.yaml", "releases:\n", time.time())
        assert store.last_valid_config(str(tmp_path / "config" / "releases.yaml")) == (
            "releases:\n")
        assert store.last_valid_config("config/../config/releases.yaml") == "releases:\n"


def test_serve_settings_from_the_config_flags_win(tmp_path: Path) -> None:
    import argparse

    from matter_ota.commands.serve import _settings
    from matter_ota.config import load_provider

    provider = tmp_path / "provider.yaml"
    provider.write_text("node:\n  passcode: 34567890\n  discriminator: 1234\n"
                        "  vendor_id: 0xFFF2\nnetwork:\n  port: 5600\n  ipv4: false\n"
                        "log:\n  level: warning\n")
    args = argparse.Namespace(port=None, passcode=None, discriminator=77, state_dir=None,
                              listen=None, log_level=None, log_format="json")
    _settings(args, load_provider(provider))
    assert (args.port, args.passcode, args.discriminator, args.vendor_id) == (
        5600, 34567890, 77, 0xFFF2)
    assert (args.state_dir, args.listen) == (tmp_path / "state", "::")
    assert (args.log_level, args.log_format, args.max_sessions) == ("warning", "json", 64)
