"""provider.yaml / releases.yaml: the examples load, every error names file:line:column."""

from __future__ import annotations

import contextlib
import textwrap
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matter_ota.config import (
    DCL_NETWORKS,
    ConfigError,
    load_config,
    load_provider,
    load_releases,
    parse_provider,
    parse_releases,
    release_to_yaml,
)
from matter_ota.policy.model import (
    DeviceMatch,
    FailurePolicy,
    IntRange,
    MaintenanceWindow,
    Product,
    RampStep,
    Release,
    ReleaseStatus,
    Source,
)

ROOT = Path(__file__).resolve().parent.parent
PROVIDER = Path("/etc/x/provider.yaml")
RELEASES = Path("/etc/x/releases.yaml")
SEED = "00112233445566778899aabbccddeeff"


def provider(text: str) -> object:
    return parse_provider(textwrap.dedent(text), PROVIDER)


def releases(text: str, channels: frozenset[str] | None = None) -> object:
    return parse_releases(textwrap.dedent(text), RELEASES, channels)


def error_of(fn: object, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        fn(text)  # type: ignore[operator]
    return info.value


def release_text(**overrides: str) -> str:
    fields = {
        "channel": "production",
        "product": '"FFF1:8001"',
        "image": "light-2.ota",
        "rollout_percent": "10",
        "cohort_seed": f'"{SEED}"',
        "released_at": "2026-11-29T18:00:00Z",
    }
    fields.update(overrides)
    lines = ["releases:"]
    for i, (k, v) in enumerate(fields.items()):
        if v == "<drop>":
            continue
        lines.append(("  - " if i == 0 else "    ") + f"{k}: {v}")
    return "\n".join(lines) + "\n"


# --- the examples ----------------------------------------------------------------------------


def test_example_config_loads_with_embedded_defaults() -> None:
    config = load_config(ROOT / "config" / "provider.yaml")
    p = config.provider
    assert p.network.port == 5540
    assert p.state_dir == ROOT / "state"
    assert p.firmware_dir == ROOT / "firmware"
    assert p.releases_file == ROOT / "config" / "releases.yaml"
    assert p.limits.bdx_idle_timeout >= 300
    assert p.dcl.url == DCL_NETWORKS["mainnet"]
    assert [c.name for c in p.channels] == ["production"]
    assert config.releases.releases == ()


def test_empty_provider_file_is_all_defaults() -> None:
    p = provider("")
    assert p.node.passcode == 20202021
    assert p.state_dir == PROVIDER.parent / "state"
    assert p.firmware_dir == PROVIDER.parent / "firmware"
    assert p.limits.max_concurrent_transfers == 16


def test_every_documented_release_key_parses() -> None:
    # The commented entry in config/releases.yaml, uncommented, must be valid.
    text = (ROOT / "config" / "releases.yaml").read_text()
    entry = [line[1:] for line in text.splitlines() if line.startswith("#  ")]
    start = next(i for i, line in enumerate(entry) if line.strip().startswith("- channel"))
    doc = "releases:\n" + "\n".join(entry[start:]).replace('"9f1c..."', f'"{SEED}"') + "\n"
    (release,) = parse_releases(doc, RELEASES).releases
    assert release.failure == FailurePolicy(5, 20)
    assert release.ramp[0] == RampStep(10, 86400)
    assert release.maintenance_window is not None
    assert release.maintenance_window.days == frozenset({1, 2, 3, 4, 5})
    assert release.pinned[1] == DeviceMatch(0x13, 0x2906C908D115D362)


def test_documented_channel_example_parses() -> None:
    text = (ROOT / "config" / "provider.yaml").read_text()
    text = text.replace("  # beta:", "  beta:").replace("  #   ", "    ")
    p = parse_provider(text, PROVIDER)
    beta = p.channels[1]
    assert beta.name == "beta" and beta.node_ids == {0x11, 0x12}
    assert beta.fabrics == {0x2906C908D115D362}
    assert beta.products == {Product(0xFFF1, 0x8001)}
    assert beta.hardware_versions == (IntRange(1, 1), IntRange(3, 5))


def test_missing_releases_file_is_no_releases(tmp_path: Path) -> None:
    assert load_releases(tmp_path / "nope.yaml").releases == ()


def test_missing_provider_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_provider(tmp_path / "nope.yaml")


# --- errors name file:line:column and what to do ---------------------------------------------


def test_unknown_key_names_line_and_suggests() -> None:
    err = error_of(provider, """\
        network:
          port: 5540
          interfaecs: [eth0]
        """)
    assert (err.path, err.line, err.column) == (PROVIDER, 3, 3)
    assert "unknown key 'interfaecs'" in str(err)
    assert "did you mean 'interfaces'" in str(err)
    assert str(err).startswith("/etc/x/provider.yaml:3:3: ")


def test_unknown_top_level_key() -> None:
    err = error_of(provider, "node: {}\nstatedir: /var/lib/x\n")
    assert err.line == 2 and "state_dir" in err.hint


def test_unknown_release_key() -> None:
    err = error_of(releases, release_text(rollout_pct="10"))
    assert err.line == 8 and "rollout_pct" in err.message


@pytest.mark.parametrize("value", ["0", "101", "10.5", '"10%"', "ten", "true", "-1", "[10]"])
def test_bad_percent_is_refused_with_line(value: str) -> None:
    err = error_of(releases, release_text(rollout_percent=value))
    assert err.line == 5 and err.column == 22
    assert "rollout_percent" in err.message
    assert "1 to 100" in err.message or "single value" in err.message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("network:\n  port: 70000\n", 2, "network.port must be from 1 to 65535"),
        ("network:\n  port: abc\n", 2, "must be an integer"),
        ("network:\n  ipv4: maybe\n", 2, "true or false"),
        ("node:\n  passcode: 12345678\n", 2, "not allowed"),
        ("node:\n  discriminator: 4096\n", 2, "0 to 4095"),
        ("node:\n  device_name: " + "x" * 33 + "\n", 2, "at most 32"),
        ("limits:\n  bdx_idle_timeout: 60s\n", 2, "from 5m"),
        ("limits:\n  busy_retry_base: 10\n", 2, "from 2m"),
        ("limits:\n  commissioning_window: soon\n", 2, "not a duration"),
        ("dcl:\n  url: http://dcl.example\n", 2, "https"),
        ("dcl:\n  cache_size: lots\n", 2, "not a size"),
        ("channels:\n  beta: {}\n", 2, "selects no device"),
        ("channels:\n  production:\n    node_ids: [1]\n", 2, "default channel"),
        ("channels:\n  Beta!:\n    node_ids: [1]\n", 2, "not valid"),
        ("channels:\n  b:\n    fabrics: [xyz]\n", 3, "hex"),
        ("channels:\n  b:\n    products: [FFF1]\n", 3, "VID:PID"),
        ("channels:\n  b:\n    hardware_versions: [\"5-3\"]\n", 3, "low-high"),
        ("channels:\n  b:\n    locations: [germany]\n", 3, "ISO 3166"),
        ("network: [1, 2]\n", 1, "must be a mapping"),
        ("node:\n  vendor_id: 1\n  vendor_id: 2\n", 3, "duplicate key"),
        ("node: {vendor_id: 1\n", 2, "YAML syntax"),
    ],
)
def test_provider_errors(text: str, line: int, words: str) -> None:
    err = error_of(provider, text)
    assert err.line == line, str(err)
    assert words in str(err), str(err)
    assert err.hint or "YAML" in err.message


@pytest.mark.parametrize(
    ("override", "line", "words"),
    [
        ({"channel": "beta"}, 2, "channel 'beta' is not defined"),
        ({"product": "12345:0101"}, 3, "16-bit"),
        ({"product": "FFF1"}, 3, "VID:PID"),
        ({"image": "<drop>"}, 2, "needs an image"),
        ({"image": "../etc/passwd"}, 4, "file name"),
        ({"image": "\u00e9" * 39 + ".ota"}, 4, "at most 233 fit"),  # ImageURI > 256 chars
        ({"source": "dcl"}, 4, "takes its images from the DCL"),
        ({"source": "ftp"}, 8, "neither local nor dcl"),
        ({"status": "PAUSED"}, 8, "neither LIVE nor INACTIVE"),
        ({"cohort_seed": "xyz"}, 6, "hex digits"),
        ({"cohort_seed": "<drop>"}, 2, "lacks 'cohort_seed'"),
        ({"released_at": "yesterday"}, 7, "ISO 8601"),
        ({"allow_downgrade": "perhaps"}, 8, "true or false"),
        ({"pinned": "[\"zz:1\"]"}, 8, "FABRIC:NODE"),
        ({"ramp": "[{percent: 50, after: 1d}, {percent: 20, after: 1d}]"}, 8, "does not grow"),
        ({"ramp": "[{percent: 50}]"}, 8, "lacks 'after'"),
        ({"failure_threshold": "{percent: 150}"}, 8, "from 0 to 100"),
        ({"maintenance_window": "{start: '25:00', end: '01:00'}"}, 8, "HH:MM"),
        ({"maintenance_window": "{start: '01:00', end: '02:00', timezone: Mars/Olympus}"}, 8,
         "unknown time zone"),
        ({"maintenance_window": "{start: '01:00', end: '02:00', days: [funday]}"}, 8,
         "not a weekday"),
    ],
)
def test_release_errors(override: dict[str, str], line: int, words: str) -> None:
    err = error_of(lambda t: releases(t, frozenset({"production"})), release_text(**override))
    assert err.line == line, str(err)
    assert words in str(err), str(err)


def test_duplicate_release_names_both_lines() -> None:
    one = release_text()
    two = one + "\n".join(one.splitlines()[1:]) + "\n"
    err = error_of(releases, two)
    assert err.line == 8 and "line 2" in err.message


def test_sexagesimal_trap_is_avoided() -> None:
    (release,) = releases(release_text(product="1234:0101")).releases  # type: ignore[attr-defined]
    assert release.product == Product(0x1234, 0x0101)
    # YAML 1.1 reads an unquoted 1:30 as the integer 90; the window reads the text.
    text = release_text(maintenance_window="{start: 1:30, end: 4:45}")
    (release,) = releases(text).releases  # type: ignore[attr-defined]
    assert release.maintenance_window.start == time(1, 30)
    assert release.maintenance_window.end == time(4, 45)


# --- round trip: what the CLI writes parses back to the same release ------------------------

_devices = st.builds(DeviceMatch, st.integers(0, 2**64 - 1),
                     st.none() | st.integers(0, 2**64 - 1))
_releases = st.builds(
    Release,
    channel=st.sampled_from(["production", "beta"]),
    product=st.builds(Product, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    image=st.just("img.ota"),
    version=st.none() | st.integers(0, 2**32 - 1),
    source=st.just(Source.LOCAL),
    status=st.sampled_from(ReleaseStatus),
    rollout_percent=st.integers(1, 100),
    cohort_seed=st.binary(min_size=8, max_size=32).map(bytes.hex),
    released_at=st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1)),
    allow_downgrade=st.booleans(),
    user_consent=st.booleans(),
    pinned=st.tuples(_devices),
    excluded=st.lists(_devices, max_size=2).map(tuple),
    hardware_versions=st.lists(
        st.tuples(st.integers(0, 100), st.integers(0, 100)).map(
            lambda t: IntRange(min(t), max(t))), max_size=3).map(tuple),
    failure=st.none() | st.builds(FailurePolicy, st.integers(0, 100).map(float),
                                  st.integers(1, 1000)),
    ramp=st.lists(st.integers(1, 100), unique=True, max_size=3).map(
        lambda ps: tuple(RampStep(p, 3600.0 * i) for i, p in enumerate(sorted(ps)))),
    percent_since=st.none(),
    maintenance_window=st.none() | st.just(
        MaintenanceWindow(time(1, 0), time(5, 30), "Europe/Berlin", frozenset({1, 7}))),
    stop_reason=st.none() | st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                                    min_size=1, max_size=20).filter(lambda s: s.strip() == s),
)


@settings(max_examples=200)
@given(_releases)
def test_release_to_yaml_round_trips(release: Release) -> None:
    import yaml

    text = yaml.safe_dump({"releases": [release_to_yaml(release)]}, sort_keys=False,
                          allow_unicode=True)
    (back,) = parse_releases(text, RELEASES).releases
    assert back == release


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_any_text_gives_a_config_or_config_error(text: str) -> None:
    # The decoder contract: a config or ConfigError, nothing else, on any input.
    for parse in (parse_provider, parse_releases):
        try:
            parse(text, PROVIDER)
        except ConfigError as err:
            assert err.path == PROVIDER


# --- structured fuzz: plausible documents with hostile values --------------------------------

_weird_scalars = st.one_of(
    st.sampled_from(["", "~", "null", "true", "0x", "0x1G", "-1", "1e400", "9" * 5000, "1:30",
                     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "25:61",
                     "\"\"", "[]", "{}", "FFFF:FFFF:FFFF", "../x", "*", "&a x", "!!binary AA",
                     "1_000", ".inf", "-.nan", "1.5h", "1d2h3m4s", "5-3", "3-", "xx:yy",
                     "'0x1234567890ABCDEF1'", "Europe/../../etc", "\u00e9t\u00e9"]),
    st.integers(-(2**70), 2**70).map(str),
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=12),
)


_PROVIDER_TEMPLATE: dict[str, object] = {
    "node": {"vendor_id": "0xFFF1", "product_id": "0x8000", "discriminator": "3840",
             "passcode": "20202021", "device_name": "x", "vendor_name": "x",
             "product_name": "x"},
    "network": {"port": "5540", "interfaces": "[eth0]", "ipv4": "true"},
    "state_dir": "s", "firmware_dir": "f", "releases_file": "r.yaml",
    "limits": {"max_sessions": "4", "max_concurrent_transfers": "4",
               "commissioning_attempts": "3", "commissioning_window": "5m",
               "bdx_idle_timeout": "5m", "busy_retry_base": "2m", "busy_retry_spread": "1m",
               "update_applied_timeout": "1h"},
    "dcl": {"url": "testnet", "ca_bundle": "ca.pem", "refresh_interval": "1h",
            "cache_size": "1GiB", "request_timeout": "5s"},
    "channels": {"beta": {"node_ids": "[1]", "fabrics": "['AB']", "vendor_ids": "[1]",
                          "products": "['FFF1:8001']", "hardware_versions": "[1]",
                          "locations": "[DE]"}},
}
_RELEASE_TEMPLATE: dict[str, object] = {
    "channel": "production", "product": "'FFF1:8001'", "image": "a.ota", "version": "2",
    "source": "local", "status": "LIVE", "rollout_percent": "10", "cohort_seed": f"'{SEED}'",
    "released_at": "2026-11-29T18:00:00Z", "allow_downgrade": "false", "user_consent": "true",
    "pinned": "[0x12]", "excluded": "['AB:12']", "hardware_versions": "['1-3']",
    "failure_threshold": {"percent": "5", "min_sample": "20"},
    "ramp": "[{percent: 20, after: 1d}]", "percent_since": "2026-11-30T00:00:00Z",
    "maintenance_window": {"start": "'01:00'", "end": "'02:00'", "timezone": "UTC",
                           "days": "[mon]"},
    "stop_reason": "x",
}


def _leaves(tree: dict[str, object], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in tree.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out.extend(_leaves(value, (*prefix, key)))
    return out


def _render(tree: dict[str, object], indent: str) -> str:
    lines = []
    for key, value in tree.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(_render(value, indent + "  "))
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(line for line in lines if line)


def _mutated(template: dict[str, object], path: tuple[str, ...], value: str
             ) -> dict[str, object]:
    tree = dict(template)
    if len(path) == 1:
        tree[path[0]] = value
    else:
        inner = tree[path[0]]
        assert isinstance(inner, dict)
        tree[path[0]] = _mutated(inner, path[1:], value)
    return tree


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(_leaves(_PROVIDER_TEMPLATE)), _weird_scalars)
def test_any_value_anywhere_in_provider_gives_config_or_config_error(
        path: tuple[str, ...], value: str) -> None:
    text = _render(_mutated(_PROVIDER_TEMPLATE, path, value), "")
    with contextlib.suppress(ConfigError):
        parse_provider(text, PROVIDER)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(_leaves(_RELEASE_TEMPLATE)), _weird_scalars)
def test_any_value_anywhere_in_a_release_gives_config_or_config_error(
        path: tuple[str, ...], value: str) -> None:
    text = "releases:\n  -\n" + _render(_mutated(_RELEASE_TEMPLATE, path, value), "    ")
    with contextlib.suppress(ConfigError):
        parse_releases(text, RELEASES)


def test_templates_are_valid() -> None:
    assert parse_provider(_render(_PROVIDER_TEMPLATE, ""), PROVIDER).channels[1].name == "beta"
    text = "releases:\n  -\n" + _render(_RELEASE_TEMPLATE, "    ")
    assert len(parse_releases(text, RELEASES).releases) == 1


_HUGE = "9" * 5000


@pytest.mark.parametrize(
    "text",
    [
        f"network:\n  port: {_HUGE}\n",
        f"channels:\n  b:\n    hardware_versions: ['{_HUGE}']\n",
        f"channels:\n  b:\n    node_ids: [{_HUGE}]\n",
        f"dcl:\n  cache_size: {_HUGE}GiB\n",
        f"limits:\n  bdx_idle_timeout: {_HUGE}\n",
        f"limits:\n  bdx_idle_timeout: {_HUGE}d\n",
        "state_dir: ~no-such-user-here/x\n",  # found by fuzzing: expanduser raised
        "firmware_dir: \"a\\0b\"\n",
    ],
)
def test_absurd_numbers_are_config_errors(text: str) -> None:
    # Found by fuzzing: int() refuses 5000 digits with ValueError, inf overflowed int().
    with pytest.raises(ConfigError):
        parse_provider(text, PROVIDER)


@pytest.mark.parametrize(
    "extra",
    [
        {"released_at": "0001-01-01T00:00:00+01:00"},
        {"released_at": "9999-12-31T23:59:59-01:00"},
        {"percent_since": "0001-01-01T00:00:00+01:00"},
        {"version": _HUGE},
        {"ramp": f"[{{percent: 5, after: {_HUGE}}}]"},
    ],
)
def test_out_of_range_release_values_are_config_errors(extra: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        parse_releases(release_text(**extra), RELEASES)
