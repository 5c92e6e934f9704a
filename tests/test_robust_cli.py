"""CLI argument fuzzing: every ``matter-ota`` sub-command (but ``serve``, which would run, and
``dcl status``, which would go to the network) with random options, values, positionals and
stdin, in a scratch directory holding the example config. The contract: exit code 0, 1 or 2;
an expected failure is one ``matter-ota: error: ...`` line (argparse's usage errors: usage then
one error line); never a traceback, never another exception out of ``main``."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matter_ota.cli import build_parser, main
from matter_ota.ota_image import build_image

ROOT = Path(__file__).resolve().parent.parent
SKIP = {("serve",), ("dcl", "status")}


def _commands() -> dict[tuple[str, ...], list[str]]:
    """(command words) -> its option strings, from the real parser."""
    found: dict[tuple[str, ...], list[str]] = {}

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[words] = [o for a in parser._actions for o in a.option_strings
                            if o not in ("-h", "--help")]
            return
        for name, child in subs[0].choices.items():
            walk(child, (*words, name))

    walk(build_parser(["--help"]), ())
    return {k: v for k, v in found.items() if k not in SKIP}


COMMANDS = _commands()
WORDS = sorted(COMMANDS)
_values = st.sampled_from([
    "", "-", "--", "0", "1", "-1", "100", "101", "1e9", "0x10", "FFF1:8001", "fff1:8001",
    "FFF1", ":", "production", "beta", "nochannel", "../../etc/passwd", "/", "/dev/null",
    "fw.ota", "payload.bin", "missing.ota", "config/provider.yaml", "config/releases.yaml",
    "state", "local", "dcl", "yes", "é", "x" * 300, "--json", "-h",
]) | st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
             max_size=12)


@st.composite
def argvs(draw: st.DrawFn) -> tuple[list[str], str]:
    words = draw(st.sampled_from(WORDS))
    options = COMMANDS[words]
    argv = list(words)
    for _ in range(draw(st.integers(0, 6))):
        if options and draw(st.booleans()):
            argv.append(draw(st.sampled_from(options)))
        if draw(st.integers(0, 3)):
            argv.append(draw(_values))
    stdin = draw(st.sampled_from(["", "garbage\n", "fabric=1 node=2\n", "{}", "\x1b[2J"])
                 | st.text(max_size=40))
    return argv, stdin


def _scratch() -> tempfile.TemporaryDirectory[str]:
    tmp = tempfile.TemporaryDirectory(prefix="matter-ota-cli-fuzz-")
    root = Path(tmp.name)
    (root / "config").mkdir()
    shutil.copy(ROOT / "config" / "provider.yaml", root / "config" / "provider.yaml")
    image = build_image(b"\x01" * 300, vendor_id=0xFFF1, product_id=0x8001, software_version=2,
                        software_version_string="2.0")
    (root / "fw.ota").write_bytes(image)
    (root / "payload.bin").write_bytes(b"\x02" * 100)
    return tmp


def run(argv: list[str], stdin: str) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code: int | str | None = main(argv)
            except SystemExit as exc:
                code = exc.code
    finally:
        sys.stdin = old_stdin
    return (0 if code is None else code if isinstance(code, int) else 1), err.getvalue()


def check(argv: list[str], stdin: str = "") -> tuple[int, str]:
    here = os.getcwd()
    with _scratch() as tmp:
        os.chdir(tmp)
        try:
            code, err = run(argv, stdin)
        finally:
            os.chdir(here)
    assert "Traceback" not in err, (argv, err)
    # `status` answers 3 when no daemon runs, as `systemctl status` (LSB) does.
    allowed = (0, 1, 2, 3) if argv[:1] == ["status"] else (0, 1, 2)
    assert code in allowed, (argv, code, err)
    lines = err.strip().splitlines()
    if code == 2 and lines and lines[0].startswith("usage:"):
        assert lines[-1].startswith("matter-ota") and ": error: " in lines[-1], (argv, err)
    elif code not in (0, 3):  # status's 3 is an answer ("not running"), not an error
        assert len(lines) == 1 and lines[0].startswith("matter-ota: error: "), (argv, err)
    return code, err


@pytest.mark.parametrize("argv", [
    ["release", "--channel", "production", "--image", "payload.bin"],
    ["release", "--channel", "production", "--image", "fw.ota", "--percent", "0"],
    ["release", "--channel", "nochannel", "--image", "fw.ota"],
    ["release", "--channel", "production", "--image", "/"],
    ["increase", "--channel", "production", "--percent", "101"],
    ["stop", "--channel", "production", "--product", "ZZZZ:1"],
    ["resume", "--channel", "production", "--product", "FFFFF:1"],
    ["source", "--channel", "production", "dcl"],
    ["explain", "--fabric", "x", "--node", "y"],
    ["explain", "--fabric", "1", "--nodes-from", "-"],
    ["explain", "--fabric", "1", "--nodes-from", "/"],
    ["history", "--limit", "-5"],
    ["releases", "--config", "/dev/null"],
    ["releases", "--config", "config"],
    ["releases", "--config", "payload.bin"],
    ["releases", "--state-dir", "payload.bin"],
    ["image", "show", "/"],
    ["image", "show", "payload.bin"],
    ["image", "verify", "fw.ota", "--vendor-id", "zz"],
    ["image", "extract", "fw.ota", "/"],
    ["image", "extract", "fw.ota", ""],
    ["image", "create", "payload.bin", ""],
    ["image", "create", "/", "out.ota"],
    ["dcl", "clear-quarantine", "\r\n"],
])
def test_bad_but_parseable_arguments(argv: list[str]) -> None:
    code, _ = check(argv, "fabric=1 node=zz\n\x00garbage\n")
    assert code != 0 or argv[0] in ("history", "releases", "image")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(argvs())
def test_any_arguments_exit_0_1_or_2_with_one_line_errors(case: tuple[list[str], str]) -> None:
    check(*case)


def test_the_grammar_covers_every_command() -> None:
    assert ("image", "create") in COMMANDS and ("release",) in COMMANDS
    assert ("explain",) in COMMANDS and ("dcl", "clear-quarantine") in COMMANDS
    assert len(COMMANDS) >= 12
