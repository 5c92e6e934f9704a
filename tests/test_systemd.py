"""sd_notify on a real unix datagram socket, as systemd listens on it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from matter_ota.runtime.systemd import Notifier


def _parse(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().split("\n"))


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2.0)
    yield sock, path
    sock.close()


def test_ready_status_stopping_watchdog(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier.from_environ({"NOTIFY_SOCKET": path})
    try:
        assert n.enabled and n.watchdog_interval is None
        assert n.ready("serving on [::]:5540")
        assert _parse(sock.recv(4096)) == {"READY": "1", "STATUS": "serving on [::]:5540",
                                           "MAINPID": str(os.getpid())}
        assert n.status("config generation 2")
        assert _parse(sock.recv(4096)) == {"STATUS": "config generation 2"}
        assert n.watchdog()
        assert _parse(sock.recv(4096)) == {"WATCHDOG": "1"}
        assert n.stopping()
        assert _parse(sock.recv(4096)) == {"STOPPING": "1", "STATUS": "stopping"}
        with pytest.raises(ValueError):
            n.status("two\nlines")
    finally:
        n.close()


def test_abstract_namespace_socket() -> None:
    name = f"matter-ota-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        n = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        try:
            assert n.ready("up")
            assert _parse(sock.recv(4096))["READY"] == "1"
        finally:
            n.close()


def test_no_socket_is_a_no_op_and_a_dead_one_is_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not Notifier.from_environ({}).ready("up")
    n = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    try:
        assert not n.ready("up") and not n.watchdog()
    finally:
        n.close()
    failures = [r for r in caplog.records if "event=sd_notify_failed" in r.getMessage()]
    assert len(failures) == 1  # once per run of failures


def test_watchdog_only_for_our_pid() -> None:
    ours = Notifier.from_environ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "4000000",
                                  "WATCHDOG_PID": str(os.getpid())})
    assert ours.watchdog_interval == 2.0  # half the timeout (sd_watchdog_enabled(3))
    other = Notifier.from_environ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "4000000",
                                   "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None
    assert Notifier.from_environ({"WATCHDOG_USEC": "junk"}).watchdog_interval is None


def test_watchdog_pings_at_half_the_timeout(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(path, watchdog_usec=200_000)  # 0.2 s: a ping every 0.1 s
    times: list[float] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(n.run_watchdog)
            await anyio.sleep(0.55)
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
        sock.settimeout(0.2)
        while True:
            try:
                assert _parse(sock.recv(4096)) == {"WATCHDOG": "1"}
            except TimeoutError:
                break
            times.append(time.monotonic())
    finally:
        n.close()
    assert 5 <= len(times) <= 7
