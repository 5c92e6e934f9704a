"""Comment-preserving YAML edits: only the changed values move, writes are atomic and checked."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from matter_ota import yamledit
from matter_ota.yamledit import ConcurrentEditError, YamlEditError

COMMENTED = """\
# Releases of the kitchen fleet. Reviewed in git; the CLI edits this file too.
releases:   # one entry per (channel, product)
  # the big one
  - channel: production  # everyone
    product: "FFF1:8001"
    image: firmware/light-v2.ota
    rollout_percent: 10   # start small
    stages:
      - 1   # canary
      - 10
    # a comment inside the item, after its last key

  - {channel: beta, product: "FFF1:8002", rollout_percent: 50}
# trailing comment
"""


def _comments(text: str) -> list[str]:
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


def test_set_scalar_keeps_every_comment() -> None:
    out = yamledit.set_fields(COMMENTED, "releases", 0, {"rollout_percent": 25})
    assert _comments(out) == _comments(COMMENTED)
    assert "    rollout_percent: 25   # start small\n" in out
    # nothing but that value changed
    assert out.replace("rollout_percent: 25", "rollout_percent: 10") == COMMENTED
    assert yaml.safe_load(out)["releases"][0]["rollout_percent"] == 25


def test_set_collection_value_and_add_key() -> None:
    out = yamledit.set_fields(COMMENTED, "releases", 0,
                              {"stages": [1, 10, 50], "status": "INACTIVE"})
    data = yaml.safe_load(out)["releases"][0]
    assert data["stages"] == [1, 10, 50] and data["status"] == "INACTIVE"
    assert "# a comment inside the item, after its last key" in out
    assert "# the big one" in out and "# trailing comment" in out


def test_flow_item_is_rewritten_in_flow() -> None:
    out = yamledit.set_fields(COMMENTED, "releases", 1, {"rollout_percent": 75, "x": "a: b"})
    assert yaml.safe_load(out)["releases"][1] == {
        "channel": "beta", "product": "FFF1:8002", "rollout_percent": 75, "x": "a: b"}
    assert _comments(out) == _comments(COMMENTED)


def test_append_item_after_last() -> None:
    out = yamledit.append_item(COMMENTED, "releases",
                               {"channel": "dev", "product": "FFF1:8003", "note": "a: b"})
    assert out.startswith(COMMENTED.split("# trailing comment")[0])
    assert yaml.safe_load(out)["releases"][2] == {
        "channel": "dev", "product": "FFF1:8003", "note": "a: b"}
    assert _comments(out) == _comments(COMMENTED)


@pytest.mark.parametrize(
    "text",
    ["", "# only a comment\n", "releases: []  # none yet\n", "releases:\n", "releases: null\n",
     "other: 1  # keep\n", "other: 1", "releases:   # below\n# end\n", "releases: ~ # x",
     "a: 1\nreleases:\nb: 2\n"],
)
def test_append_to_empty_shapes(text: str) -> None:
    out = yamledit.append_item(text, "releases", {"channel": "production", "n": 1})
    data = yaml.safe_load(out)
    if "#" in text:  # the comment stays on its own line
        first = text.splitlines()[0]
        assert first.split("#")[1] in out.splitlines()[0]
    assert data["releases"] == [{"channel": "production", "n": 1}]
    assert _comments(out) == _comments(text)
    out2 = yamledit.append_item(out, "releases", {"channel": "beta", "n": 2})
    assert [r["n"] for r in yaml.safe_load(out2)["releases"]] == [1, 2]


def test_set_empty_value() -> None:
    text = "releases:\n  - channel: x\n    seed:\n    n: 1  # keep\n"
    out = yamledit.set_fields(text, "releases", 0, {"seed": "abc"})
    assert yaml.safe_load(out)["releases"][0] == {"channel": "x", "seed": "abc", "n": 1}
    assert "# keep" in out


def test_errors() -> None:
    with pytest.raises(YamlEditError, match="not valid YAML at line 3"):
        yamledit.set_fields("releases:\n  - a: [\n", "releases", 0, {"a": 1})
    with pytest.raises(YamlEditError, match=r"releases\[3\] does not exist"):
        yamledit.set_fields(COMMENTED, "releases", 3, {"a": 1})
    with pytest.raises(YamlEditError, match="must be a list"):
        yamledit.append_item("releases: 3\n", "releases", {"a": 1})
    with pytest.raises(YamlEditError, match="top level must be a mapping"):
        yamledit.append_item("- 1\n", "releases", {"a": 1})


_scalars = st.one_of(
    st.integers(-(2**40), 2**40), st.booleans(), st.none(),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3),
                    st.dictionaries(st.text("abc", min_size=1, max_size=3), _scalars, max_size=3))
_keys = st.sampled_from(["channel", "product", "image", "rollout_percent", "stages", "new_key",
                         "other"])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1), st.dictionaries(_keys, _values, min_size=1, max_size=4))
def test_any_edit_loads_back_and_keeps_comments(index: int, changes: dict[str, Any]) -> None:
    out = yamledit.set_fields(COMMENTED, "releases", index, changes)
    expected = yaml.safe_load(COMMENTED)
    expected["releases"][index].update(changes)
    assert yaml.safe_load(out) == expected
    # Comments outside the edited values stay, in order (a block value that is replaced
    # takes its own inner comments with it: here only "# canary" inside `stages`).
    kept = [c for c in _comments(COMMENTED)
            if not (c == "# canary" and index == 0 and "stages" in changes)]
    positions = [out.find(c) for c in kept]
    assert -1 not in positions and positions == sorted(positions)


def _accept(_: Path) -> None:
    return None


def test_write_is_atomic_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "releases.yaml"
    path.write_text(COMMENTED)
    os.chmod(path, 0o640)

    def refuse(candidate: Path) -> None:
        assert yaml.safe_load(candidate.read_text())["releases"][0]["rollout_percent"] == 99
        raise YamlEditError("refused by the loader")

    base = yamledit.read_snapshot(path)
    with pytest.raises(YamlEditError, match="refused"):
        yamledit.write_validated(
            base, yamledit.set_fields(base.text, "releases", 0, {"rollout_percent": 99}), refuse)
    assert path.read_text() == COMMENTED
    assert sorted(p.name for p in tmp_path.iterdir()) == [".releases.yaml.lock", "releases.yaml"]

    new = yamledit.write_validated(
        base, yamledit.set_fields(base.text, "releases", 0, {"rollout_percent": 20}), _accept)
    assert "rollout_percent: 20" in path.read_text() and new.text == path.read_text()
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_concurrent_change_is_detected_and_retried(tmp_path: Path) -> None:
    path = tmp_path / "releases.yaml"
    path.write_text(COMMENTED)
    base = yamledit.read_snapshot(path)
    path.write_text(COMMENTED + "# edited by hand meanwhile\n")
    with pytest.raises(ConcurrentEditError):
        yamledit.write_validated(base, base.text, _accept)

    calls = []

    def transform(snap: yamledit.Snapshot) -> str:
        calls.append(snap.digest)
        if len(calls) == 1:  # someone edits between our read and our write
            path.write_text(snap.text + "# another hand edit\n")
        return yamledit.set_fields(snap.text, "releases", 0, {"rollout_percent": 30})

    yamledit.edit(path, transform, _accept)
    final = path.read_text()
    assert len(calls) == 2
    assert "# another hand edit" in final and "rollout_percent: 30" in final

    def always_raced(snap: yamledit.Snapshot) -> str:
        path.write_text(snap.text + "#\n")
        return snap.text

    with pytest.raises(ConcurrentEditError, match="kept changing"):
        yamledit.edit(path, always_raced, _accept)


def test_parallel_edits_all_land(tmp_path: Path) -> None:
    """Threads each append their own item through the lock: none is lost."""
    path = tmp_path / "releases.yaml"
    path.write_text("# header\nreleases: []\n")

    def add(n: int) -> None:
        yamledit.edit(
            path, lambda s: yamledit.append_item(s.text, "releases", {"n": n}), _accept,
            attempts=50)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["n"] for r in yaml.safe_load(path.read_text())["releases"]) == list(range(8))
    assert path.read_text().startswith("# header\n")


def test_delete_keys_takes_only_their_lines() -> None:
    out = yamledit.set_fields(COMMENTED, "releases", 0,
                              {"stages": yamledit.DELETE, "rollout_percent": yamledit.DELETE,
                               "absent": yamledit.DELETE})
    assert yaml.safe_load(out)["releases"][0] == {
        "channel": "production", "product": "FFF1:8001", "image": "firmware/light-v2.ota"}
    assert "# start small" not in out and "# canary" not in out  # they were on those lines
    for kept in ("# the big one", "# everyone", "# a comment inside the item, after its last key",
                 "# trailing comment"):
        assert kept in out


def test_delete_first_key_empties_it_and_flow_items_drop_it() -> None:
    out = yamledit.set_fields(COMMENTED, "releases", 0, {"channel": yamledit.DELETE})
    assert yaml.safe_load(out)["releases"][0]["channel"] is None
    assert "# everyone" in out
    out = yamledit.set_fields(COMMENTED, "releases", 1, {"rollout_percent": yamledit.DELETE})
    assert yaml.safe_load(out)["releases"][1] == {"channel": "beta", "product": "FFF1:8002"}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["product", "image", "rollout_percent", "stages", "x"]),
                       st.one_of(_values, st.just(yamledit.DELETE)), min_size=1, max_size=4))
def test_any_edit_with_deletes(changes: dict[str, Any]) -> None:
    out = yamledit.set_fields(COMMENTED, "releases", 0, changes)
    expected = yaml.safe_load(COMMENTED)
    item = expected["releases"][0]
    for k, v in changes.items():
        if v is yamledit.DELETE:
            item.pop(k, None)
        else:
            item[k] = v
    assert yaml.safe_load(out) == expected
    assert out.startswith("# Releases of the kitchen fleet.") and "# trailing comment" in out


_fragments = st.lists(st.sampled_from([
    "releases:", " ", "\n", "  ", "- ", "a: 1", "{", "}", "[", "]", ",", "#c", "? ", ": ",
    "&x ", "*x", "null", "'q'", '"d"', "|", "---", "...", "!!str ", "\t", "releases: []",
    "- {a: 1}", "  - a: 1\n", "    b: 2\n",
]), max_size=25).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_fragments, st.text(max_size=60)))
def test_any_text_edits_or_raises_yamledit_error(text: str) -> None:
    """Like a decoder: any input is edited correctly or refused with YamlEditError only."""
    for edit in (lambda t: yamledit.set_fields(t, "releases", 0, {"a": 7}),
                 lambda t: yamledit.append_item(t, "releases", {"a": 7})):
        try:
            out = edit(text)
        except YamlEditError:
            continue
        data = yaml.safe_load(out)
        assert isinstance(data["releases"], list)
        assert any(isinstance(item, dict) and item.get("a") == 7 for item in data["releases"])


def test_quoted_strings() -> None:
    out = yamledit.append_item("releases:\n", "releases",
                               {"product": yamledit.Quoted("1234:5678"), "plain": "abc"})
    assert '- product: "1234:5678"' in out and "plain: abc" in out
    assert yaml.safe_load(out)["releases"][0]["product"] == "1234:5678"
