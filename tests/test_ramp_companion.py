"""The daemon advances staged ramps by itself: due steps taken, failures hold them."""

from __future__ import annotations

from pathlib import Path

import pytest

from matter_ota.commands._ramp import advance_due_ramps
from matter_ota.config import load_config
from matter_ota.runtime.service import ProviderService
from matter_ota.store import Store

RELEASE = """\
releases:
  - channel: production
    product: "FFF1:8001"
    image: light.ota
    version: 2
    status: LIVE
    rollout_percent: 10
    cohort_seed: "00112233445566778899aabbccddeeff"
    released_at: 2026-01-01T00:00:00Z
    failure_threshold: {{percent: 10, min_sample: 5}}
    ramp:   # staged by the operator
      - {{percent: 50, after: {after}}}
      - {{percent: 100, after: 1h}}
"""


def _site(tmp_path: Path, after: str) -> Path:
    provider = tmp_path / "provider.yaml"
    provider.write_text("state_dir: state\n")
    (tmp_path / "releases.yaml").write_text(RELEASE.format(after=after))
    return provider


@pytest.mark.parametrize(("after", "moved"), [("1m", 1), ("366d", 0)])
def test_due_steps_are_taken_once(tmp_path: Path, after: str, moved: int) -> None:
    provider = _site(tmp_path, after)
    with Store.open(tmp_path / "state") as store:
        service = ProviderService(load_config(provider), store)
        assert advance_due_ramps(service) == moved
        text = (tmp_path / "releases.yaml").read_text()
        assert "# staged by the operator" in text  # the edit keeps the operator's comments
        assert ("rollout_percent: 50" in text) == bool(moved)
        ramps = [e for e in store.history() if e.action == "ramp"]
        assert len(ramps) == moved
        if moved:
            assert ramps[0].actor == "daemon"
            # The next step (100 % after 1 h at 50 %) is not due yet: nothing more moves.
            service = ProviderService(load_config(provider), store)
            assert advance_due_ramps(service) == 0


def test_failures_hold_the_ramp(tmp_path: Path) -> None:
    provider = _site(tmp_path, "1m")
    with Store.open(tmp_path / "state") as store:
        service = ProviderService(load_config(provider), store)
        # 3 failed of 4 finished: 75 % > the 10 % threshold, the step stays where it is.
        _record(store, applied=1, failed=3)
        assert advance_due_ramps(service) == 0
        assert "rollout_percent: 10" in (tmp_path / "releases.yaml").read_text()


def _record(store: Store, *, applied: int, failed: int) -> None:
    states = ["applied"] * applied + ["failed"] * failed
    for node, state in enumerate(states, start=1):
        store.set_outcome(channel="production", vendor_id=0xFFF1, product_id=0x8001,
                          software_version=2, compressed_fabric_id="AB" * 8, node_id=node,
                          state=state, now=1.8e9)
