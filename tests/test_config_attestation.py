"""provider.yaml `attestation:`: the four files, all or none, relative to the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from matter_ota.config import AttestationFiles, ConfigError, parse_provider

FILES = ("dac_cert: dac.der\n  dac_key: dac.pem\n  pai_cert: pai.der\n"
         "  certification_declaration: cd.der\n")


def test_attestation_files_resolve_against_the_config(tmp_path: Path) -> None:
    config = parse_provider("attestation:\n  " + FILES, tmp_path / "provider.yaml")
    assert config.attestation == AttestationFiles(
        tmp_path / "dac.der", tmp_path / "dac.pem", tmp_path / "pai.der", tmp_path / "cd.der")


def test_attestation_defaults_to_none(tmp_path: Path) -> None:
    assert parse_provider("", tmp_path / "p.yaml").attestation is None


@pytest.mark.parametrize(("text", "where"), [
    ("attestation:\n  dac_cert: x\n", "provider.yaml:2:"),
    ("attestation:\n  " + FILES + "  extra: 1\n", "provider.yaml:6:3: unknown key 'extra'"),
])
def test_partial_or_unknown_keys_are_refused(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_provider(text, tmp_path / "provider.yaml")
    assert where in str(info.value) and "attestation" in str(info.value)
