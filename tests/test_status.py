"""`matter-ota status`: the daemon's own row in the store against the files on disk."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from matter_ota.cli import main
from matter_ota.reload import files_digest
from matter_ota.store import Store


def test_status_never_started_then_running_then_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = tmp_path / "provider.yaml"
    provider.write_text("state_dir: state\n")
    releases = tmp_path / "releases.yaml"
    releases.write_text("releases:\n")
    argv = ["status", "--config", str(provider)]
    assert main(argv) == 3
    assert capsys.readouterr().out.startswith("daemon: has never run")
    assert not (tmp_path / "state").exists()  # status creates nothing

    with Store.open(tmp_path / "state") as store:
        now = time.time()
        store.daemon_started(os.getpid(), now)
        store.daemon_running("[::]:5540", now)
        store.config_applied(4, files_digest([provider, releases]),
                             [str(provider), str(releases)], now)
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"daemon: running (pid {os.getpid()}) on [::]:5540")
    assert out[1].startswith("config: generation 4 applied")
    assert out[2] == "files:  the daemon serves the files on disk"

    releases.write_text("releases: []\n")  # an edit the daemon has not applied yet
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == "running" and report["in_sync"] is False
    assert report["config_generation"] == 4 and report["warnings"] == []

    with Store.open(tmp_path / "state") as store:
        store.set_config_warning(str(releases), 1, "bad", time.time())
        store.daemon_stopped(time.time())
    assert main(argv) == 3
    out = capsys.readouterr().out
    assert "daemon: stopped" in out and f"warning: {releases}:1: bad" in out
