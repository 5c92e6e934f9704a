"""`matter-ota image create|show|verify|extract`: outputs, JSON, exit codes, every refusal."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from image_samples import DROP, MAGIC, header_tlv, raw_image

from matter_ota.cli import main
from matter_ota.tlv import uint


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def firmware(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    payload = tmp_path / "fw.bin"
    payload.write_bytes(b"firmware " * 5000)
    out = tmp_path / "fw.ota"
    code, stdout, _ = run(
        capsys,
        "image",
        "create",
        "--vendor-id",
        "0xFFF1",
        "--product-id",
        "32768",
        "--version",
        "0x10",
        "--version-string",
        "1.0.16",
        "--min-version",
        "1",
        "--max-version",
        "15",
        "--release-notes-url",
        "https://example.com/notes",
        str(payload),
        str(out),
    )
    assert code == 0
    assert stdout.startswith(f"created {out}: vendor_id=0xFFF1 product_id=0x8000 version=16 ")
    return out


def test_show_json_has_the_documented_keys(
    firmware: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "image", "show", str(firmware), "--json")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert shown == {
        "vendor_id": 0xFFF1,
        "product_id": 0x8000,
        "software_version": 16,
        "software_version_string": "1.0.16",
        "payload_size": 45000,
        "min_applicable_version": 1,
        "max_applicable_version": 15,
        "release_notes_url": "https://example.com/notes",
        "digest_type": 1,
        "digest": hashlib.sha256(b"firmware " * 5000).hexdigest(),
        "header_size": shown["header_size"],
        "total_size": 16 + shown["header_size"] + 45000,
    }
    assert firmware.stat().st_size == shown["total_size"]


def test_show_for_people(firmware: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "image", "show", str(firmware))
    assert code == 0
    assert "vendor id               0xFFF1 (65521)" in out
    assert "digest type             1 (sha-256)" in out


def test_verify_ok_is_one_line(firmware: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "image",
        "verify",
        str(firmware),
        "--vendor-id",
        "65521",
        "--product-id",
        "0x8000",
        "--version",
        "16",
    )
    assert (code, err) == (0, "")
    assert out.count("\n") == 1 and out.startswith(f"{firmware}: valid: vendor_id=0xFFF1")


def test_extract_writes_the_payload(
    firmware: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "image", "extract", str(firmware), str(tmp_path / "out.bin"))
    assert code == 0 and out.startswith("extracted 45000-byte payload")
    assert (tmp_path / "out.bin").read_bytes() == b"firmware " * 5000


def create_with_digest(tmp_path: Path, digest: str) -> list[str]:
    """``image create`` argv for payload ``tmp_path/p`` into ``tmp_path/o`` with ``--digest``."""
    return [
        "image",
        "create",
        "--vendor-id",
        "1",
        "--product-id",
        "2",
        "--version",
        "3",
        "--version-string",
        "3",
        "--digest",
        digest,
        str(tmp_path / "p"),
        str(tmp_path / "o"),
    ]


@pytest.mark.parametrize("name", ["sha256_32", "sha-384", "sha512", "sha3_224", "sha3-512"])
def test_create_with_each_digest_name(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p").write_bytes(b"p" * 100)
    assert run(capsys, *create_with_digest(tmp_path, name))[0] == 0
    _, out, _ = run(capsys, "image", "show", "--json", str(tmp_path / "o"))
    algorithm_ids = {"sha256_32": 6, "sha-384": 7, "sha512": 8, "sha3_224": 9, "sha3-512": 12}
    assert json.loads(out)["digest_type"] == algorithm_ids[name]
    assert run(capsys, "image", "verify", str(tmp_path / "o"))[0] == 0


REFUSALS: list[tuple[str, bytes, list[str], str]] = [
    ("identifier", raw_image(identifier=0x12345678), [], "bad file identifier 0x12345678"),
    ("short", raw_image()[:10], [], "truncated at byte 10: "),
    ("cut-payload", raw_image()[:-1], [], "truncated at byte "),
    ("limit", raw_image(header_size=5000), [], "header size 5000 over the limit of 1024 bytes"),
    (
        "garbage",
        struct.pack("<IQI", MAGIC, 20, 4) + b"\xff\xff\xff\xff",
        [],
        "malformed header TLV: ",
    ),
    ("missing", raw_image(header_tlv(t2=DROP)), [], "missing mandatory field 2 (SoftwareVersion)"),
    ("long", raw_image(header_tlv(t3="v" * 65)), [], "version string too long: "),
    ("sizes", raw_image(total=len(raw_image()) + 7), [], "total/payload size mismatch: "),
    ("digest-type", raw_image(header_tlv(t8=uint(13))), [], "unknown digest type 13 "),
    ("digest", raw_image(payload=b"abd"), [], "digest mismatch: "),
    ("vendor", raw_image(), ["--vendor-id", "0xFFF2"], "vendor ID 0xFFF1 in the image, 0xFFF2 was"),
    ("product", raw_image(), ["--product-id", "1"], "product ID 0x8000 in the image, 0x0001 was"),
    ("version", raw_image(), ["--version", "3"], "software version 2 in the image, 3 was asked"),
]


@pytest.mark.parametrize(
    ("data", "options", "phrase"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_verify_refusals_are_one_line(
    data: bytes,
    options: list[str],
    phrase: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.ota"
    path.write_bytes(data)
    code, out, err = run(capsys, "image", "verify", str(path), *options)
    assert code == 1 and out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"matter-ota: error: {path}: {phrase}"), err
    if options:
        return
    # extract refuses the same image for the same reason and writes nothing
    code, _, extract_err = run(capsys, "image", "extract", str(path), str(tmp_path / "out"))
    assert code == 1 and extract_err == err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ota"]


def test_show_refuses_a_bad_header_but_not_a_bad_payload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.ota").write_bytes(raw_image(header_tlv(t8=uint(99))))
    code, _, err = run(capsys, "image", "show", str(tmp_path / "a.ota"))
    assert code == 1 and "unknown digest type 99" in err
    (tmp_path / "b.ota").write_bytes(raw_image(payload=b"abd"))  # show reads the header only
    assert run(capsys, "image", "show", str(tmp_path / "b.ota"))[0] == 0


def test_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "image", "verify", str(tmp_path / "nope.ota"))
    assert code == 1
    assert err == f"matter-ota: error: {tmp_path / 'nope.ota'}: No such file or directory\n"


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        (["--version-string", ""], "the version string is empty"),
        (["--version-string", "x" * 65], "version string too long: 65 bytes"),
        (["--min-version", "9"], "minimum applicable version 9 is not below the image's"),
        (["--min-version", "4", "--max-version", "3"], "is above the maximum 3"),
        (["--release-notes-url", "ftp://x"], "must be an ASCII https:// URL"),
        (["--vendor-id", "0x10000"], "vendor ID 65536 is not in 0-0xFFFF"),
    ],
)
def test_create_refusals(
    options: list[str], phrase: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p").write_bytes(b"p")
    base = {"--vendor-id": "1", "--product-id": "2", "--version": "5", "--version-string": "5"}
    for key, value in zip(options[::2], options[1::2], strict=True):
        base[key] = value
    argv = [item for pair in base.items() for item in pair]
    code, _, err = run(capsys, "image", "create", *argv, str(tmp_path / "p"), str(tmp_path / "o"))
    assert code == 1
    assert err.startswith("matter-ota: error: ") and phrase in err, err
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_create_unknown_digest_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *create_with_digest(tmp_path, "md5"))
    assert code == 2 and "unknown digest 'md5'" in err


def test_unwritable_output_is_named(
    firmware: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no-such-dir" / "out.bin"
    code, _, err = run(capsys, "image", "extract", str(firmware), str(out))
    assert code == 1
    assert err == f"matter-ota: error: {out}: No such file or directory\n"


def test_refusal_through_python_m_is_one_line_without_traceback(tmp_path: Path) -> None:
    # `python -m matter_ota.cli` runs cli.py as __main__; CliError must still be caught there.
    (tmp_path / "bad.ota").write_bytes(raw_image(identifier=0))
    daemon = Path(__file__).resolve().parent.parent / "daemon"
    done = subprocess.run(
        [sys.executable, "-m", "matter_ota.cli", "image", "verify", str(tmp_path / "bad.ota")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(daemon)},
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"matter-ota: error: {tmp_path / 'bad.ota'}: bad file identifier 0x00000000 "
        "(a Matter OTA image starts with 0x1BEEF11E, little endian)\n"
    )
