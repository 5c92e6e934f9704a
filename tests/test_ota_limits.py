"""The OTA installer sizes the provider and its BDX sender from provider.yaml's limits."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from matter_ota.commands._ota import install_ota
from matter_ota.node import Node

ROOT = Path(__file__).resolve().parent.parent


def test_limits_from_the_config_reach_the_provider_and_bdx(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config" / "releases.yaml", tmp_path / "releases.yaml")
    text = (ROOT / "config" / "provider.yaml").read_text()
    text = text.replace("max_concurrent_transfers: 16", "max_concurrent_transfers: 5")
    text = text.replace("bdx_idle_timeout: 5m", "bdx_idle_timeout: 7m")
    text = text.replace("update_applied_timeout: 1h", "update_applied_timeout: 2h")
    (tmp_path / "provider.yaml").write_text(text)
    (tmp_path / "firmware").mkdir()
    args = argparse.Namespace(config=tmp_path / "provider.yaml", state_dir=tmp_path / "state")
    node = Node()
    install_ota(node, args)
    provider = args.update_decider
    assert provider.settings.notify_timeout == 7200
    config = provider.transfers.config
    assert config.idle_timeout == 420
    assert config.max_transfers == 10  # headroom over the engine's Busy cap of 5
    provider.store.close()
