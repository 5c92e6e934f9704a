"""serve's IM installer: identity from the config, UniqueID kept across restarts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from im_client import Client, path
from msg_pair import make_node, secure_pair

from matter_ota.cli import CliError
from matter_ota.commands._im import install_im
from matter_ota.im.messages import Opcode, ReadRequest
from matter_ota.messaging.session import SessionKind


def read_basic(config: Path | None, state: Path, **options: object) -> dict[int, object]:
    client, server = make_node(), make_node()
    install_im(server, argparse.Namespace(config=config, state_dir=state, **options))
    c, _ = secure_pair(client, server, kind=SessionKind.PASE)
    conv = Client(client, server, c).send(Opcode.READ_REQUEST, ReadRequest(
        attribute_requests=[path(0, 0x28)], fabric_filtered=True).encode())
    return {r.attribute_data.path.attribute or 0: r.attribute_data.data
            for rd in conv.reports() for r in rd.attribute_reports or ()
            if r.attribute_data is not None}


def test_identity_from_config_and_stable_unique_id(tmp_path: Path) -> None:
    config = tmp_path / "provider.yaml"
    config.write_text("node:\n  vendor_id: 0xFFF2\n  product_id: 0x1234\n"
                      "  vendor_name: Acme\n  product_name: Updater\n")
    first = read_basic(config, tmp_path / "state")
    assert (first[1], first[2], first[3], first[4]) == ("Acme", 0xFFF2, "Updater", 0x1234)
    again = read_basic(config, tmp_path / "state")
    assert first[0x12] == again[0x12] and len(str(first[0x12])) == 32
    assert (tmp_path / "state" / "unique-id").read_text().strip() == first[0x12]


def test_command_line_ids_win_over_the_config(tmp_path: Path) -> None:
    config = tmp_path / "provider.yaml"
    config.write_text("node:\n  vendor_id: 0xFFF2\n  product_id: 0x1234\n")
    got = read_basic(config, tmp_path / "state", vendor_id=0xFFF3, product_id=None)
    assert (got[2], got[4]) == (0xFFF3, 0x1234)


def test_bad_config_is_a_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "provider.yaml"
    config.write_text("node:\n  vendor_id: nope\n")
    with pytest.raises(CliError, match=r"provider.yaml:2"):
        read_basic(config, tmp_path / "state")
    with pytest.raises(CliError, match="no such file"):
        read_basic(tmp_path / "missing.yaml", tmp_path / "state")
