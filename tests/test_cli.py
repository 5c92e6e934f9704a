"""The command line's shape: every sub-command registers, errors are one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from matter_ota import __version__
from matter_ota.cli import build_parser, main

DAEMON = Path(__file__).resolve().parent.parent / "daemon"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_serve_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--passcode" in capsys.readouterr().out


def test_a_command_imports_only_its_own_module() -> None:
    """`matter-ota image ...` does not pay for the daemon's imports (node, crypto, store)."""
    code = (
        "import sys\n"
        "from matter_ota.cli import main\n"
        "try:\n"
        "    main(['image', 'show', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('matter_ota'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(DAEMON)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    loaded = set(out.split())
    assert "matter_ota.commands.image" in loaded
    assert not loaded & {"matter_ota.commands.serve", "matter_ota.node", "matter_ota.store",
                         "matter_ota.crypto.spake2p", "matter_ota.commands.rollout"}


def test_version_registers_no_command_and_help_registers_all() -> None:
    assert "serve" not in build_parser(["--version"]).format_help()
    full = build_parser(["--help"]).format_help()
    assert "serve" in full and "image" in full and "release" in full
    assert "serve" in build_parser(["-h", "image"]).format_help()  # help before the command
