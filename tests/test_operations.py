"""Random sequences of console operations: the file stays valid, comments stay, every
successful operation is exactly one audit row, and refusals change nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from matter_ota.config import load_provider, load_releases, release_to_yaml
from matter_ota.operations import Console, OperationError
from matter_ota.ota_image import build_image
from matter_ota.policy.model import Product, ReleaseStatus, Source
from matter_ota.store import Store

PROVIDER = "state_dir: ../state\nfirmware_dir: ../firmware\nchannels:\n  production: {}\n" \
    "  beta:\n    node_ids: [0x99]\n"
RELEASES = "# header comment\nreleases:   # list comment\n# footer comment\n"
PRODUCTS = (Product(0xFFF1, 0x8001), Product(0xFFF1, 0x8002))

_percent = st.one_of(st.integers(1, 100), st.integers(1, 100), st.sampled_from([0, 101]))
_channel = st.sampled_from(["production", "production", "beta"])
_op = st.one_of(
    st.tuples(st.just("release"), _channel,
              st.sampled_from(PRODUCTS), st.integers(2, 4), _percent,
              st.sampled_from([None, True, False])),
    st.tuples(st.sampled_from(["stop", "resume"]), _channel,
              st.sampled_from([None, *PRODUCTS])),
    st.tuples(st.just("increase"), _channel,
              st.sampled_from([None, *PRODUCTS]), _percent),
    st.tuples(st.just("source"), _channel,
              st.sampled_from([None, *PRODUCTS]), st.sampled_from([Source.DCL, Source.LOCAL])),
)


def _run(console: Console, images: Path, op: tuple[object, ...]) -> int:
    """Run one operation; how many release rows it changed."""
    kind, channel = op[0], str(op[1])
    if kind == "release":
        product, version, percent, same = op[2], op[3], op[4], op[5]
        assert isinstance(product, Product) and isinstance(version, int)
        image = images / f"img-{product.product_id:04x}-{version}.ota"
        console.release(channel=channel, image=image, percent=percent,  # type: ignore[arg-type]
                        same_set=same, product=None)  # type: ignore[arg-type]
    elif kind == "stop":
        console.stop(channel, op[2])  # type: ignore[arg-type]
    elif kind == "resume":
        console.resume(channel, op[2])  # type: ignore[arg-type]
    elif kind == "increase":
        console.increase(channel, op[3], op[2])  # type: ignore[arg-type]
    else:
        return len(console.switch_source(channel, op[3], op[2]))  # type: ignore[arg-type]
    return 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_op, min_size=6, max_size=20))
def test_random_operation_sequences(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config").mkdir()
        images = root / "images"
        images.mkdir()
        for product in PRODUCTS:
            for version in (2, 3, 4):
                (images / f"img-{product.product_id:04x}-{version}.ota").write_bytes(
                    build_image(b"p%d" % version, vendor_id=product.vendor_id,
                                product_id=product.product_id, software_version=version,
                                software_version_string=str(version)))
        (root / "config" / "provider.yaml").write_text(PROVIDER)
        releases_path = root / "config" / "releases.yaml"
        releases_path.write_text(RELEASES)
        provider = load_provider(root / "config" / "provider.yaml")
        with Store.open(root / "state") as store:
            console = Console(provider, store, actor="test")
            done = 0
            start = [("release", "production", p, 2, 10, False) for p in PRODUCTS]
            for op in [*start, *ops]:
                before_text = releases_path.read_text()
                before = load_releases(releases_path, provider.channel_names)
                try:
                    changed = _run(console, images, op)
                except OperationError:
                    assert releases_path.read_text() == before_text  # refused: untouched
                    continue
                done += changed
                after = load_releases(releases_path, provider.channel_names)
                # Invariants of what was written.
                text = releases_path.read_text()
                for comment in ("# header comment", "# list comment", "# footer comment"):
                    assert comment in text
                for release in after.releases:
                    assert 1 <= release.rollout_percent <= 100
                    assert (release.image is None) == (release.source is Source.DCL)
                    old = before.get(release.channel, release.product)
                    if op[0] in ("stop", "resume", "increase") and old is not None \
                            and old.key == release.key:
                        assert release.cohort_seed == old.cohort_seed  # same devices
                    if op[0] == "increase" and old is not None and old.key == release.key \
                            and release_to_yaml(old) != release_to_yaml(release):
                        assert release.rollout_percent > old.rollout_percent
                    if old is not None and old.source is Source.DCL \
                            and old.status is ReleaseStatus.LIVE and op[0] != "source":
                        assert release_to_yaml(release) == release_to_yaml(old)  # read-only
                assert len(after.releases) >= len(before.releases)  # nothing is deleted
            event(f"transitions: {'10+' if done >= 10 else done // 3 * 3}")
            assert len(store.history()) == done


_line = st.one_of(
    st.text(max_size=30),
    st.integers(-5, 2**70).map(str),
    st.dictionaries(st.sampled_from(["fabric", "node", "vendor_id", "product_id", "version",
                                     "hardware_version", "bogus"]),
                    st.one_of(st.integers(-3, 2**66), st.text(max_size=8), st.none(),
                              st.booleans(), st.lists(st.integers(), max_size=2)),
                    max_size=4).map(__import__("json").dumps),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=6))
def test_nodes_from_lines_parse_or_refuse(lines: list[str]) -> None:
    """--nodes-from input, like any decoder: parsed, or refused with CliError only."""
    from matter_ota.cli import CliError
    from matter_ota.commands.explain import _lines

    defaults = {"node": None, "vendor_id": 1, "product_id": 2, "version": 3,
                "hardware_version": None}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nodes"
        path.write_text("\n".join(line.replace("\n", " ") for line in lines))
        try:
            for fields in _lines(path, defaults):
                assert 0 <= fields["node"] < 1 << 64
                assert all(0 <= fields[k] < 1 << 16 for k in ("vendor_id", "product_id"))
                assert 0 <= fields["version"] < 1 << 32
                hardware = fields["hardware_version"]
                assert hardware is None or 0 <= hardware < 1 << 16
        except CliError:
            pass
