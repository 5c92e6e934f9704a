"""Log lines: key=value text or JSON objects, one line per event."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matter_ota.runtime import logs


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def test_parse_fields_keeps_sentences_whole() -> None:
    message = ("event=config_invalid file=/etc/matter-ota/releases.yaml line=12 "
               "reason=rollout_percent must be from 1 to 100, not 150; pick a value "
               "kept=last_valid")
    assert logs.parse_fields(message) == {
        "event": "config_invalid", "file": "/etc/matter-ota/releases.yaml", "line": "12",
        "reason": "rollout_percent must be from 1 to 100, not 150; pick a value",
        "kept": "last_valid",
    }
    assert logs.parse_fields("plain words") == {"msg": "plain words"}
    assert logs.parse_fields("lead in event=x") == {"msg": "lead in", "event": "x"}


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
                       st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
                       min_size=1, max_size=5))
def test_kv_round_trips_any_value(fields: dict[str, str]) -> None:
    assert logs.parse_fields(logs.kv(**fields)) == fields


def test_text_and_json_formats(restore_root: None) -> None:
    out = io.StringIO()
    logs.configure("info", "text", out)
    log = logging.getLogger("matter_ota.test")
    log.info("event=query node=0x%X decision=%s", 0x12, "offer")
    log.debug("event=hidden")
    line = out.getvalue()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO matter_ota\.test "
                        r"event=query node=0x12 decision=offer\n", line)
    out = io.StringIO()
    logs.configure("debug", "json", out)  # replaces the text handler: one line per event
    log.warning("event=config_invalid file=a.yaml line=3 reason=%s kept=last_valid",
                "no such key; did you mean 'x'?")
    log.debug("event=detail %s", logs.kv(reason="two words", n=1))
    entries = [json.loads(x) for x in out.getvalue().splitlines()]
    assert entries[0]["level"] == "warning" and entries[0]["logger"] == "matter_ota.test"
    assert (entries[0]["event"], entries[0]["line"], entries[0]["reason"]) == (
        "config_invalid", "3", "no such key; did you mean 'x'?")
    assert (entries[1]["reason"], entries[1]["n"]) == ("two words", "1")
    logs.set_level("warning")
    log.info("event=quiet")
    assert len(out.getvalue().splitlines()) == 2


def test_exception_in_json(restore_root: None) -> None:
    out = io.StringIO()
    logs.configure("info", "json", out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("matter_ota.test").exception("event=node_error")
    entry = json.loads(out.getvalue())
    assert entry["event"] == "node_error" and "RuntimeError: boom" in entry["exc"]


def test_bad_level_or_format_refused() -> None:
    with pytest.raises(ValueError):
        logs.configure("loud", "text")
    with pytest.raises(ValueError):
        logs.configure("info", "xml")
