"""Config reload: valid edits apply within 2 s, invalid ones keep the last valid config."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anyio
import pytest
import yaml

from matter_ota.reload import ConfigWatcher, Invalid, Reloaded, watch


class BadConfig(ValueError):
    def __init__(self, file: Path, line: int, reason: str) -> None:
        super().__init__(f"{file}:{line}: {reason}")
        self.file, self.line, self.reason = file, line, reason


def _loader(path: Path):  # type: ignore[no-untyped-def]
    def load() -> dict[str, int]:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise BadConfig(path, 1, "not YAML") from exc
        if not isinstance(data, dict) or not isinstance(data.get("percent"), int):
            raise BadConfig(path, 1, "percent must be an integer")
        return data

    return load


def _watcher(path: Path) -> ConfigWatcher[dict[str, int]]:
    load = _loader(path)
    return ConfigWatcher(load(), load, lambda _cfg: [path], errors=(BadConfig,), now=0.0)


def _step(w: ConfigWatcher[dict[str, int]], start: float, until: float
          ) -> tuple[float, Reloaded[dict[str, int]] | Invalid | None]:
    """Poll every interval from ``start``; the first event and when it came."""
    t = start
    while t <= until:
        event = w.check(t)
        if event is not None:
            return t, event
        t += w.interval
    return t, None


def test_valid_change_applies_after_one_stable_poll(tmp_path: Path) -> None:
    path = tmp_path / "releases.yaml"
    path.write_text("percent: 10\n")
    w = _watcher(path)
    assert _step(w, 0.5, 3.0)[1] is None  # nothing changed
    path.write_text("percent: 20\n")
    t, event = _step(w, 3.5, 10.0)
    assert isinstance(event, Reloaded) and event.config == {"percent": 20}
    assert event.files == (path,)
    assert t - 3.5 < 2.0
    assert w.current == {"percent": 20}


def test_same_size_same_mtime_edit_is_seen_by_rehash(tmp_path: Path) -> None:
    path = tmp_path / "releases.yaml"
    path.write_text("percent: 10\n")
    st = os.stat(path)
    w = _watcher(path)
    path.write_text("percent: 30\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    t, event = _step(w, 0.5, 10.0)
    assert isinstance(event, Reloaded) and event.config == {"percent": 30}
    assert t <= 4.0


def test_invalid_edit_reported_once_and_last_valid_kept(tmp_path: Path) -> None:
    path = tmp_path / "releases.yaml"
    path.write_text("percent: 10\n")
    w = _watcher(path)
    path.write_text("percent: lots\n")
    _t, event = _step(w, 0.5, 5.0)
    assert isinstance(event, Invalid)
    assert (event.file, event.line, event.reason) == (str(path), 1, "percent must be an integer")
    assert w.current == {"percent": 10} and w.last_error == event
    assert _step(w, 6.0, 20.0)[1] is None  # not reported again
    path.write_text("percent: 40\n")
    _t, event = _step(w, 20.5, 30.0)
    assert isinstance(event, Reloaded) and w.current == {"percent": 40}
    assert w.last_error is None


def test_undoing_a_bad_edit_clears_the_error(tmp_path: Path) -> None:
    path = tmp_path / "releases.yaml"
    path.write_text("percent: 10\n")
    st = os.stat(path)
    w = _watcher(path)
    path.write_text("percent: [\n")
    assert isinstance(_step(w, 0.5, 5.0)[1], Invalid)
    path.write_text("percent: 10\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # byte-identical to the valid one
    _t, event = _step(w, 5.5, 12.0)
    assert isinstance(event, Reloaded) and event.files == () and w.last_error is None


def test_deleted_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "releases.yaml"
    path.write_text("percent: 10\n")
    load = _loader(path)
    w = ConfigWatcher(load(), load, lambda _cfg: [path], errors=(BadConfig, OSError))
    path.unlink()
    _t, event = _step(w, 0.5, 5.0)
    assert isinstance(event, Invalid) and "No such file" in event.reason


def test_watch_loop_applies_within_two_seconds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The real anyio loop on the real clock: an edit is live within 2 s, a bad one logged."""
    import time

    path = tmp_path / "releases.yaml"
    path.write_text("percent: 10\n")
    load = _loader(path)
    applied: list[tuple[float, dict[str, int]]] = []
    invalid: list[Invalid] = []

    async def main() -> None:
        w = ConfigWatcher(load(), load, lambda _cfg: [path], errors=(BadConfig,),
                          now=time.monotonic())
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: watch(w, lambda c: applied.append((time.monotonic(), c)),
                                        on_invalid=invalid.append))
            await anyio.sleep(0.3)
            t0 = time.monotonic()
            path.write_text("percent: 55\n")
            with anyio.fail_after(2.0):
                while not applied:
                    await anyio.sleep(0.05)
            assert applied[0][1] == {"percent": 55} and applied[0][0] - t0 < 2.0
            path.write_text("percent: x\n")
            with anyio.fail_after(2.0):
                while not invalid:
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()

    with caplog.at_level(logging.WARNING, logger="matter_ota.reload"):
        anyio.run(main)
    assert any("event=config_invalid" in r.getMessage() and "line=1" in r.getMessage()
               for r in caplog.records)
