"""Interop with matter.js (npm @matter/protocol): its OtaImageReader reads the images we write,
ours reads the images its OtaImageWriter writes. A peer we did not write, run for real."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from matterjs_support import matterjs_dir, results, run_node

from matter_ota import ota_image
from matter_ota.ota_image import OtaImageError

pytestmark = pytest.mark.interop

HARNESS = "ota_image.cjs"


@pytest.fixture(scope="module")
def matterjs() -> Path:
    return matterjs_dir()


def random_fields(rng: random.Random, index: int) -> dict[str, Any]:
    """Varied header fields, extremes first: field widths, lengths, optional fields, Unicode."""
    version = [1, 0xFFFF_FFFF, 0x100][index] if index < 3 else rng.randrange(1, 1 << 32)
    text = "".join(rng.choice("0123456789.-abcé€😀") for _ in range(rng.randrange(1, 17)))
    while len(text.encode()) > 64:
        text = text[:-1]
    low = rng.choice([None, rng.randrange(0, version)])
    high = rng.choice([None, rng.randrange(low or 0, version)])
    return {
        "vendor_id": [0, 0xFFFF, 0xFFF1][index] if index < 3 else rng.randrange(0x10000),
        "product_id": [0, 0xFFFF, 0x8000][index] if index < 3 else rng.randrange(0x10000),
        "software_version": version,
        "software_version_string": "v" * 64 if index == 1 else text,
        "min_applicable_version": low,
        "max_applicable_version": high,
        "release_notes_url": rng.choice(
            [None, "https://example.com/notes/" + "n" * rng.randrange(0, 230)]
        ),
    }


def as_matterjs(fields: dict[str, Any], payload: bytes) -> dict[str, Any]:
    """The same header in matter.js's OtaImageHeader spelling (absent optionals omitted)."""
    names = {
        "vendor_id": "vendorId",
        "product_id": "productId",
        "software_version": "softwareVersion",
        "software_version_string": "softwareVersionString",
        "min_applicable_version": "minApplicableSoftwareVersion",
        "max_applicable_version": "maxApplicableSoftwareVersion",
        "release_notes_url": "releaseNotesUrl",
    }
    out = {names[k]: v for k, v in fields.items() if v is not None}
    out["payloadSize"] = len(payload)
    out["imageDigestType"] = 1
    out["imageDigest"] = hashlib.sha256(payload).hexdigest()
    return out


def read_with_matterjs(matterjs: Path, files: list[Path]) -> list[dict[str, Any]]:
    found = results(run_node(HARNESS, matterjs, "read", *map(str, files)))
    assert len(found) == len(files)
    return found


def test_matterjs_reads_the_images_we_write(matterjs: Path, tmp_path: Path) -> None:
    rng = random.Random(20261129)
    expected: list[dict[str, Any]] = []
    files: list[Path] = []
    for index in range(40):
        fields = random_fields(rng, index)
        # Empty, one byte, around matter.js's 64 KiB reads, and a few MiB (several of our chunks).
        size = [0, 1, 65536, 65537, 3 << 20][index] if index < 5 else rng.randrange(0, 5000)
        payload = rng.randbytes(size)
        (tmp_path / f"{index}.bin").write_bytes(payload)
        ota_image.create_image(tmp_path / f"{index}.bin", tmp_path / f"{index}.ota", **fields)
        files.append(tmp_path / f"{index}.ota")
        expected.append(as_matterjs(fields, payload))
    results = read_with_matterjs(matterjs, files)
    for want, got in zip(expected, results, strict=True):
        assert got == {"header": {**want, "payloadSize": got["header"]["payloadSize"]}}
        assert int(got["header"]["payloadSize"]) == want["payloadSize"]


def test_matterjs_refuses_what_we_refuse(matterjs: Path, tmp_path: Path) -> None:
    """Damage we detect, the independent reader detects too: we agree on what the bytes mean."""
    payload = bytes(range(256)) * 40
    good = ota_image.build_image(
        payload, vendor_id=1, product_id=2, software_version=3, software_version_string="3"
    )
    flipped = bytearray(good)
    flipped[-100] ^= 0x01
    cases = {"flipped": bytes(flipped), "truncated-header": good[:30]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(OtaImageError):
            ota_image.verify_image(tmp_path / name)
    results = read_with_matterjs(matterjs, [tmp_path / name for name in cases])
    assert "digest mismatch" in results[0]["error"]
    assert "ended unexpectedly" in results[1]["error"]


def test_matterjs_extracts_the_payload_of_our_image(matterjs: Path, tmp_path: Path) -> None:
    payload = random.Random(7).randbytes(300_000)
    (tmp_path / "fw.bin").write_bytes(payload)
    header = ota_image.create_image(
        tmp_path / "fw.bin",
        tmp_path / "fw.ota",
        vendor_id=0xFFF1,
        product_id=0x8001,
        software_version=9,
        software_version_string="9.0",
    )
    out = run_node(HARNESS, matterjs, "extract", str(tmp_path / "fw.ota"), str(tmp_path / "x"))
    assert results(out)[0]["header"]["imageDigest"] == header.digest.hex()
    assert (tmp_path / "x").read_bytes() == payload


def test_we_read_the_images_matterjs_writes(matterjs: Path, tmp_path: Path) -> None:
    rng = random.Random(4711)
    requests: list[dict[str, Any]] = []
    for index in range(40):
        fields = random_fields(rng, index)
        payload = rng.randbytes([0, 1, 70000][index] if index < 3 else rng.randrange(0, 3000))
        request = as_matterjs(fields, payload)
        for key in ("payloadSize", "imageDigestType", "imageDigest"):
            del request[key]
        requests.append({**request, "payload": payload.hex(), "_fields": fields})
    stdin = "".join(
        json.dumps({k: v for k, v in r.items() if k != "_fields"}) + "\n" for r in requests
    )
    out = run_node(HARNESS, matterjs, "write", str(tmp_path), stdin=stdin)
    written = results(out)
    assert len(written) == len(requests)
    for request, result in zip(requests, written, strict=True):
        payload = bytes.fromhex(request["payload"])
        header = ota_image.verify_image(result["file"])
        for key, value in request["_fields"].items():
            assert getattr(header, key) == value, key
        assert header.payload_size == len(payload)
        assert header.digest_type == 1 and header.digest == hashlib.sha256(payload).digest()
        # byte for byte what we write for the same fields: both pick the shortest encodings
        assert Path(result["file"]).read_bytes() == ota_image.build_image(
            payload, **request["_fields"]
        )
        # and extracting gives back exactly the payload matter.js was given
        ota_image.extract_payload(result["file"], tmp_path / "payload")
        assert (tmp_path / "payload").read_bytes() == payload


# The digest types both sides compute: matter.js 0.17 hashes OTA payloads with sha-256, sha-384
# and sha-512 only (it names sha3-256 but its WebCrypto backend cannot compute it).
SHARED_DIGESTS = [("sha256", "SHA-256", 1), ("sha384", "SHA-384", 7), ("sha512", "SHA-512", 8)]


@pytest.mark.parametrize(("ours", "theirs", "type_id"), SHARED_DIGESTS)
def test_each_shared_digest_type_both_ways(
    ours: str, theirs: str, type_id: int, matterjs: Path, tmp_path: Path
) -> None:
    payload = random.Random(type_id).randbytes(200_000)
    fields = {
        "vendor_id": 0xFFF1,
        "product_id": 0x8000,
        "software_version": 5,
        "software_version_string": "5.0",
    }
    algorithm = ota_image.digest_by_name(ours)
    image = ota_image.build_image(payload, digest=algorithm, **fields)
    flipped = bytearray(image)
    flipped[-1] ^= 0x80
    (tmp_path / "ours.ota").write_bytes(image)
    (tmp_path / "flipped.ota").write_bytes(flipped)
    read, refused = read_with_matterjs(matterjs, [tmp_path / "ours.ota", tmp_path / "flipped.ota"])
    assert read["header"]["imageDigestType"] == type_id
    assert read["header"]["imageDigest"] == hashlib.new(ours, payload).hexdigest()
    assert "digest mismatch" in refused["error"]

    request = {
        "vendorId": 0xFFF1,
        "productId": 0x8000,
        "softwareVersion": 5,
        "softwareVersionString": "5.0",
        "payload": payload.hex(),
        "imageDigestType": theirs,
    }
    (written,) = results(
        run_node(HARNESS, matterjs, "write", str(tmp_path), stdin=json.dumps(request) + "\n")
    )
    header = ota_image.verify_image(written["file"])
    assert header.digest_type == type_id and header.digest_algorithm is algorithm
    assert Path(written["file"]).read_bytes() == image
