"""`matter-ota serve --passcode`: the PASE installer."""

from __future__ import annotations

import argparse

import pytest

from matter_ota.cli import EXIT_USAGE, main
from matter_ota.commands._pase import install_pase
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.node import Node


@pytest.mark.parametrize("passcode", ["12345678", "11111111", "87654321"])
def test_trivial_passcode_refused_in_one_line(passcode: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--passcode", passcode, "--port", "0"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "5.1.7.1" in err[0] and passcode in err[0]


def test_installer_registers_pase_only_with_a_passcode() -> None:
    node = Node()
    install_pase(node, argparse.Namespace(passcode=None))
    assert node.route(0, Op.PBKDF_PARAM_REQUEST) is None
    install_pase(node, argparse.Namespace(passcode=20202021))
    assert node.route(0, Op.PBKDF_PARAM_REQUEST) is not None
