"""Config loading against structure, not just values: random YAML documents, structural and
textual mutations of the example configs. The contract: a config or a ConfigError naming the
file, nothing else (``tests/test_config.py`` fuzzes the values in place)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_config import _RELEASE_TEMPLATE, _render

from matter_ota.config import ConfigError, parse_provider, parse_releases

ROOT = Path(__file__).resolve().parent.parent
PROVIDER = Path("/etc/matter-ota/provider.yaml")
RELEASES = Path("/etc/matter-ota/releases.yaml")
PROVIDER_TEXT = (ROOT / "config" / "provider.yaml").read_text(encoding="utf-8")
RELEASES_TEXT = "releases:\n  -\n" + _render(_RELEASE_TEMPLATE, "    ") + "\n"
EXAMPLES = {"provider": (PROVIDER_TEXT, parse_provider, PROVIDER),
            "releases": (RELEASES_TEXT, parse_releases, RELEASES)}

_KEYS = ["node", "network", "limits", "dcl", "channels", "releases", "image", "channel",
         "percent", "status", "vendor_id", "port", "passcode", "node_ids", "products", "x"]
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.binary(max_size=8) | st.dates()
           | st.datetimes(timezones=st.none() | st.just(datetime.UTC)))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), inner,
                                        max_size=4), max_leaves=25)


def _only_config_error(text: str, parse: Any, path: Path) -> None:
    try:
        parse(text, path)
    except ConfigError as err:
        assert err.path == path and str(err).startswith(str(path))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_random_documents_give_config_or_config_error(doc: object) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    for parse, path in ((parse_provider, PROVIDER), (parse_releases, RELEASES)):
        _only_config_error(text, parse, path)


def _paths(tree: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out += _paths(value, (*prefix, i))
    return out


def _apply(tree: Any, path: tuple[Any, ...], op: str, value: Any) -> Any:
    if not path:
        return {"delete": None, "replace": value, "wrap_list": [tree],
                "wrap_map": {"x": tree}, "rename": tree}[op]
    parent, key = tree, path[0]
    child = _apply(parent[key], path[1:], op, value)
    if isinstance(parent, dict):
        parent = dict(parent)
        if len(path) == 1 and op == "delete":
            del parent[key]
        elif len(path) == 1 and op == "rename":
            parent[str(value)[:10]] = parent.pop(key)
        else:
            parent[key] = child
    else:
        parent = list(parent)
        if len(path) == 1 and op == "delete":
            del parent[key]
        else:
            parent[key] = child
    return parent


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(EXAMPLES)), st.data())
def test_structural_mutations_of_the_examples(which: str, data: st.DataObject) -> None:
    text, parse, path = EXAMPLES[which]
    tree = yaml.safe_load(text)
    for _ in range(data.draw(st.integers(1, 3))):
        target = data.draw(st.sampled_from(_paths(tree)))
        op = data.draw(st.sampled_from(["delete", "replace", "wrap_list", "wrap_map", "rename"]))
        tree = _apply(tree, target, op, data.draw(values))
    _only_config_error(yaml.safe_dump(tree, allow_unicode=True), parse, path)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(EXAMPLES)), st.data())
def test_textual_mutations_of_the_examples(which: str, data: st.DataObject) -> None:
    """Lines deleted, duplicated (duplicate keys), re-indented, swapped, text spliced in."""
    text, parse, path = EXAMPLES[which]
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["delete", "dup", "indent", "dedent", "swap", "splice"]))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip()
        elif op == "swap":
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            at = data.draw(st.integers(0, len(lines[i])))
            junk = data.draw(st.sampled_from(
                [": ", "- ", "&a ", "*a", "<<: *a", "!!python/object:os.system ", "{", "]",
                 "\t", "'", '"', "%YAML 1.1", "---", "...", "\x00", "\ufeff", "? "])
                | st.text(max_size=6))
            lines[i] = lines[i][:at] + junk + lines[i][at:]
    _only_config_error("\n".join(lines) + "\n", parse, path)


@pytest.mark.parametrize("text", [
    "channels: " + "[" * 5000 + "]" * 5000,
    "node: " + "{a: " * 3000 + "1" + "}" * 3000,
    "".join("  " * i + f"k{i}:\n" for i in range(3000)),
])
def test_deep_nesting_is_a_config_error(text: str) -> None:
    for parse, path in ((parse_provider, PROVIDER), (parse_releases, RELEASES)):
        with pytest.raises(ConfigError, match="nested too deeply"):
            parse(text, path)


def test_alias_bomb_is_refused_quickly() -> None:
    """Billion laughs inside a key the loader reads: anchors are never expanded (9**9 nodes)."""
    levels = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    bomb = "[" + ", ".join(levels) + "]"
    for text, parse, path in (
            (f"channels:\n  beta:\n    node_ids: {bomb}\n", parse_provider, PROVIDER),
            (f"releases: {bomb}\n", parse_releases, RELEASES),
            (f"releases:\n  - {{channel: production, devices: {bomb}}}\n", parse_releases,
             RELEASES)):
        with pytest.raises(ConfigError):
            parse(text, path)
    nested = "channels:\n  beta:\n    node_ids: &l [1, 2]\n  gamma:\n    node_ids: *l\n"
    assert parse_provider(nested, PROVIDER).channels  # plain aliases still work
