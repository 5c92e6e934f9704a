"""OTA image format (spec 11.21.2): round trips, every refusal, robustness, streaming."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from image_samples import DROP, MAGIC, header_tlv, raw_image

from matter_ota import ota_image, tlv
from matter_ota.ota_image import (
    DIGESTS,
    OtaImageError,
    OtaImageHeader,
    Reason,
    build_image,
    parse_header,
    verify_bytes,
)
from matter_ota.tlv import uint


def refusal(data: bytes) -> OtaImageError:
    with pytest.raises(OtaImageError) as exc:
        verify_bytes(data)
    return exc.value


# --------------------------------------------------------------------------- round trips

version_strings = st.text(min_size=1, max_size=64).filter(lambda s: 1 <= len(s.encode()) <= 64)
urls = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=248
).map(lambda s: "https://" + s)


@st.composite
def image_fields(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.integers(1, 0xFFFF_FFFF))
    low = draw(st.none() | st.integers(0, version - 1))
    high = draw(st.none() | st.integers(0 if low is None else low, version - 1))
    return {
        "vendor_id": draw(st.integers(0, 0xFFFF)),
        "product_id": draw(st.integers(0, 0xFFFF)),
        "software_version": version,
        "software_version_string": draw(version_strings),
        "min_applicable_version": low,
        "max_applicable_version": high,
        "release_notes_url": draw(st.none() | urls),
        "digest": draw(st.sampled_from(list(DIGESTS.values()))),
    }


@settings(max_examples=300, deadline=None)
@given(fields=image_fields(), payload=st.binary(max_size=3000))
def test_round_trip_of_every_field(fields: dict[str, Any], payload: bytes) -> None:
    image = build_image(payload, **fields)
    header = verify_bytes(image)
    algorithm = fields["digest"]
    assert header == parse_header(image[: header.payload_offset])
    assert header.vendor_id == fields["vendor_id"]
    assert header.product_id == fields["product_id"]
    assert header.software_version == fields["software_version"]
    assert header.software_version_string == fields["software_version_string"]
    assert header.min_applicable_version == fields["min_applicable_version"]
    assert header.max_applicable_version == fields["max_applicable_version"]
    assert header.release_notes_url == fields["release_notes_url"]
    assert header.digest_type == algorithm.type_id
    assert header.digest == hashlib.new(algorithm.hashlib_name, payload).digest()[: algorithm.size]
    assert header.payload_size == len(payload)
    assert header.total_size == len(image)
    assert image[header.payload_offset :] == payload
    assert 16 + header.header_size + len(payload) == len(image)
    # The header is the canonical TLV the spec gives: one anonymous structure, tags in order.
    tag, value = tlv.decode_element(image[16 : header.payload_offset])
    assert tag is None and list(value) == sorted(value)


@settings(max_examples=60, deadline=None)
@given(fields=image_fields(), payload=st.binary(max_size=5000))
def test_streaming_create_and_extract_match_the_in_memory_image(
    fields: dict[str, Any], payload: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source, image, out = Path(tmp) / "p.bin", Path(tmp) / "i.ota", Path(tmp) / "o.bin"
        source.write_bytes(payload)
        header = ota_image.create_image(source, image, **fields)
        assert image.read_bytes() == build_image(payload, **fields)
        assert ota_image.read_header(image) == header == ota_image.extract_payload(image, out)
        assert out.read_bytes() == payload


def test_header_bytes_of_a_known_image() -> None:
    # The bytes matter.js 0.16.11's OtaImageWriter wrote for these fields (test_ota_image_matterjs
    # checks that live); connectedhomeip's ota_image_tool.py builds the header with chip.tlv from
    # the same uint fields, which is checked below.
    image = build_image(
        bytes(range(1, 6)),
        vendor_id=0xFFF1,
        product_id=0x8000,
        software_version=2,
        software_version_string="2.0",
    )
    assert image.hex() == (
        "1ef1ee1b51000000000000003c000000"  # identifier, total 81, header 60
        "152500f1ff250100802402022c0303322e302404052408013009"
        "2074f81fe167d99b4cb41d6d0ccda82278caee9f3e2f25d5e5a3936ff3dcec60d0180102030405"
    )
    chip_tlv = pytest.importorskip("chip.tlv")
    writer = chip_tlv.TLVWriter()  # as ota_image_tool.py's generate_header_tlv does it
    u = chip_tlv.uint
    writer.put(
        None,
        {
            0: u(0xFFF1),
            1: u(0x8000),
            2: u(2),
            3: "2.0",
            4: u(5),
            8: u(1),
            9: hashlib.sha256(bytes(range(1, 6))).digest(),
        },
    )
    assert image[16:76] == bytes(writer.encoding)


@pytest.mark.parametrize("algorithm", list(DIGESTS.values()), ids=lambda a: a.iana_name)
def test_every_digest_type(algorithm: ota_image.DigestAlgorithm) -> None:
    image = build_image(
        b"abc",
        vendor_id=1,
        product_id=2,
        software_version=3,
        software_version_string="3",
        digest=algorithm,
    )
    header = verify_bytes(image)
    full = hashlib.new(algorithm.hashlib_name, b"abc").digest()
    assert header.digest == full[: algorithm.size]
    assert (
        len(header.digest)
        == {
            "sha-256": 32,
            "sha-256-128": 16,
            "sha-256-120": 15,
            "sha-256-96": 12,
            "sha-256-64": 8,
            "sha-256-32": 4,
            "sha-384": 48,
            "sha-512": 64,
            "sha3-224": 28,
            "sha3-256": 32,
            "sha3-384": 48,
            "sha3-512": 64,
        }[algorithm.iana_name]
    )
    assert ota_image.digest_by_name(algorithm.iana_name) is algorithm
    assert ota_image.digest_by_name(algorithm.cli_name) is algorithm


def test_json_keys_are_the_documented_ones() -> None:
    header = verify_bytes(
        build_image(
            b"x", vendor_id=1, product_id=2, software_version=3, software_version_string="3"
        )
    )
    assert list(header.to_json()) == [
        "vendor_id",
        "product_id",
        "software_version",
        "software_version_string",
        "payload_size",
        "min_applicable_version",
        "max_applicable_version",
        "release_notes_url",
        "digest_type",
        "digest",
        "header_size",
        "total_size",
    ]


def test_applicable_range() -> None:
    header = verify_bytes(
        build_image(
            b"",
            vendor_id=1,
            product_id=2,
            software_version=10,
            software_version_string="10",
            min_applicable_version=3,
            max_applicable_version=5,
        )
    )
    assert [v for v in range(12) if header.applies_to(v)] == [3, 4, 5]


def test_unknown_tags_are_ignored_for_forward_compatibility() -> None:
    fields = header_tlv(t10="future field", t200=uint(7))
    header = verify_bytes(raw_image(fields))
    assert header.software_version_string == "2.0"


# --------------------------------------------------------------------------- each refusal


def test_bad_file_identifier() -> None:
    exc = refusal(raw_image(header_tlv(), identifier=0x1BEEF11F))
    assert exc.reason is Reason.BAD_FILE_IDENTIFIER
    assert str(exc).startswith("bad file identifier 0x1BEEF11F")


def test_a_short_file_of_another_kind_is_not_called_truncated() -> None:
    exc = refusal(b"PK\x03\x04\x14\x00")  # the start of a zip file
    assert exc.reason is Reason.BAD_FILE_IDENTIFIER
    assert refusal(b"\x1e\xf1\xee").reason is Reason.TRUNCATED  # could still be an image


def test_truncated_at_every_byte() -> None:
    image = raw_image(header_tlv())
    for n in range(len(image)):
        exc = refusal(image[:n])
        assert exc.reason is Reason.TRUNCATED, n
        assert str(exc).startswith(f"truncated at byte {n}:"), str(exc)


def test_header_size_over_the_limit() -> None:
    exc = refusal(raw_image(header_tlv(), header_size=1025))
    assert exc.reason is Reason.HEADER_TOO_LARGE
    assert str(exc) == "header size 1025 over the limit of 1024 bytes"
    # The limit is inclusive: a 1024-byte header (padded with an unknown field) is fine.
    padded = header_tlv(t10="x" * 300)  # long enough for a 2-byte length already
    padded[10] = "x" * (300 + 1024 - len(tlv.encode(padded)))
    assert len(tlv.encode(padded)) == 1024
    assert verify_bytes(raw_image(padded)).header_size == 1024


@pytest.mark.parametrize(
    "body",
    [
        b"\x15\x25\x00",  # structure cut short
        b"\x15\x24\x00\x01\x24\x00\x02\x18",  # duplicate context tag
        b"\xff" * 8,  # not TLV at all
        tlv.encode(header_tlv()) + b"\x00",  # trailing octet inside HeaderSize
        tlv.encode([uint(1)]),  # an array, not a structure
        tlv.encode(header_tlv(), tlv.CommonTag(1)),  # a tagged structure
        tlv.encode(header_tlv(t0=-1)),  # signed VendorID
        tlv.encode(header_tlv(t3=b"2.0")),  # octet string where a UTF-8 string belongs
        tlv.encode(header_tlv(t9="digest")),  # UTF-8 string where an octet string belongs
        tlv.encode(header_tlv(t8=None)),  # null digest type
    ],
)
def test_malformed_header_tlv(body: bytes) -> None:
    exc = refusal(raw_image(body))
    assert exc.reason is Reason.MALFORMED_HEADER
    assert str(exc).startswith("malformed header TLV: ")


@pytest.mark.parametrize(
    ("tag", "name"),
    [(0, "VendorID"), (2, "SoftwareVersion"), (4, "PayloadSize"), (9, "ImageDigest")],
)
def test_missing_mandatory_field(tag: int, name: str) -> None:
    exc = refusal(raw_image(header_tlv(**{f"t{tag}": DROP})))
    assert exc.reason is Reason.MISSING_FIELD
    assert str(exc) == f"missing mandatory field {tag} ({name})"


def test_version_string_too_long() -> None:
    exc = refusal(raw_image(header_tlv(t3="é" * 33)))  # 33 characters, 66 bytes
    assert exc.reason is Reason.VERSION_STRING_TOO_LONG
    assert "66 bytes, the limit is 64" in str(exc)
    assert verify_bytes(raw_image(header_tlv(t3="é" * 32))).software_version_string == "é" * 32


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        ({"t0": uint(0x10000)}, "field 0 (VendorID) is 65536, over its maximum 65535"),
        ({"t2": uint(1 << 32)}, "field 2 (SoftwareVersion) is 4294967296"),
        ({"t3": ""}, "field 3 (SoftwareVersionString) is empty"),
        ({"t7": "h" * 257}, "field 7 (ReleaseNotesURL) is 257 bytes"),
        ({"t9": b"\x00" * 31}, "is 31 bytes, sha-256 (type 1) digests are 32"),
    ],
)
def test_invalid_field_values(overrides: dict[str, Any], phrase: str) -> None:
    exc = refusal(raw_image(header_tlv(**overrides)))
    assert exc.reason is Reason.INVALID_FIELD
    assert phrase in str(exc)


def test_total_and_payload_size_mismatch() -> None:
    good = raw_image(header_tlv())
    exc = refusal(raw_image(header_tlv(), total=len(good) + 1))
    assert exc.reason is Reason.SIZE_MISMATCH
    assert str(exc).startswith("total/payload size mismatch: TotalSize is")
    exc = refusal(raw_image(header_tlv(t4=uint(4))))  # PayloadSize disagrees with TotalSize
    assert exc.reason is Reason.SIZE_MISMATCH
    exc = refusal(good + b"\x00")  # data after the announced end
    assert exc.reason is Reason.SIZE_MISMATCH
    assert f"after byte {len(good)}" in str(exc)


@pytest.mark.parametrize("digest_type", [0, 13, 32, 255])
def test_unknown_digest_type(digest_type: int) -> None:
    exc = refusal(raw_image(header_tlv(t8=uint(digest_type))))
    assert exc.reason is Reason.UNKNOWN_DIGEST_TYPE
    assert str(exc).startswith(f"unknown digest type {digest_type} ")


def test_digest_mismatch() -> None:
    exc = refusal(raw_image(header_tlv(), payload=b"abd"))
    assert exc.reason is Reason.DIGEST_MISMATCH
    assert hashlib.sha256(b"abd").hexdigest() in str(exc)


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        ({"vendor_id": 0xFFF2}, "vendor ID 0xFFF1 in the image, 0xFFF2 was asked"),
        ({"product_id": 0x8001}, "product ID 0x8000 in the image, 0x8001 was asked"),
        ({"software_version": 3}, "software version 2 in the image, 3 was asked"),
    ],
)
def test_identity_mismatch(asked: dict[str, int], message: str) -> None:
    image = raw_image(header_tlv())
    with pytest.raises(OtaImageError) as exc:
        verify_bytes(image, **asked)
    assert exc.value.reason is Reason.IDENTITY_MISMATCH
    assert str(exc.value) == message
    verify_bytes(image, vendor_id=0xFFF1, product_id=0x8000, software_version=2)


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"vendor_id": 0x10000}, "vendor ID 65536 is not in 0-0xFFFF"),
        ({"software_version_string": ""}, "version string is empty"),
        ({"software_version_string": "x" * 65}, "version string too long: 65 bytes"),
        ({"min_applicable_version": 5}, "minimum applicable version 5 is not below"),
        ({"max_applicable_version": 5}, "maximum applicable version 5 is not below"),
        ({"min_applicable_version": 3, "max_applicable_version": 2}, "is above the maximum 2"),
        ({"release_notes_url": "http://x"}, "must be an ASCII https:// URL"),
        ({"release_notes_url": "https://" + "x" * 249}, "257 bytes, allowed 1-256"),
    ],
)
def test_build_refuses_what_devices_would_refuse(changes: dict[str, Any], phrase: str) -> None:
    fields: dict[str, Any] = {
        "vendor_id": 1,
        "product_id": 2,
        "software_version": 5,
        "software_version_string": "5",
        **changes,
    }
    with pytest.raises(OtaImageError) as exc:
        build_image(b"", **fields)
    assert phrase in str(exc.value)


# --------------------------------------------------------------------------- robustness


def _accepts_or_refuses(data: bytes) -> OtaImageHeader | None:
    try:
        return verify_bytes(data)
    except OtaImageError:
        return None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_input_raises_only_ota_image_error(data: bytes) -> None:
    _accepts_or_refuses(data)
    _accepts_or_refuses(struct.pack("<IQI", MAGIC, len(data) + 16, len(data)) + data)


tlv_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 63) - 1)
    | st.integers(0, (1 << 64) - 1).map(uint)
    | st.text(max_size=70)
    | st.binary(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.integers(0, 12), inner, max_size=12)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    replaced=st.dictionaries(st.integers(0, 12), tlv_values, max_size=4),
    dropped=st.sets(st.integers(0, 9), max_size=3),
)
def test_hostile_header_fields_raise_only_ota_image_error(
    replaced: dict[int, Any], dropped: set[int]
) -> None:
    fields = {**header_tlv(), **replaced}
    for tag in dropped:
        fields.pop(tag, None)
    data = raw_image(tlv.encode(fields))
    header = _accepts_or_refuses(data)
    if header is not None:  # accepted: then it is exactly what the fields say
        assert header.vendor_id == fields[0] and header.digest == fields[9]


@settings(max_examples=300, deadline=None)
@given(fields=image_fields(), payload=st.binary(min_size=1, max_size=200), data=st.data())
def test_bit_flips_are_refused_or_read_as_written(
    fields: dict[str, Any], payload: bytes, data: st.DataObject
) -> None:
    image = bytearray(build_image(payload, **fields))
    original = verify_bytes(bytes(image))
    bit = data.draw(st.integers(0, len(image) * 8 - 1))
    image[bit // 8] ^= 1 << (bit % 8)
    header = _accepts_or_refuses(bytes(image))
    if bit // 8 >= original.payload_offset:
        assert header is None  # every payload bit is covered by the digest...
        with pytest.raises(OtaImageError) as exc:
            verify_bytes(bytes(image))
        assert exc.value.reason is Reason.DIGEST_MISMATCH  # ...and the refusal says so
    elif header is not None:  # refused is fine; one that still parses must show the change
        assert header != original


def test_deeply_nested_header_is_refused_cleanly() -> None:
    body = b"\x16" * 512 + b"\x18" * 512  # arrays nested 512 deep in a 1024-byte header
    exc = refusal(raw_image(body))
    assert exc.reason is Reason.MALFORMED_HEADER


# --------------------------------------------------------------------------- files, streaming


def test_create_verify_extract_files(tmp_path: Path) -> None:
    payload = os.urandom(ota_image.CHUNK_SIZE * 2 + 12345)  # several chunks and a partial one
    (tmp_path / "fw.bin").write_bytes(payload)
    seen: list[tuple[int, int]] = []
    header = ota_image.create_image(
        tmp_path / "fw.bin",
        tmp_path / "fw.ota",
        vendor_id=0xFFF1,
        product_id=0x8000,
        software_version=7,
        software_version_string="1.7",
        digest=ota_image.digest_by_name("sha512"),
        progress=lambda done, total: seen.append((done, total)),
    )
    image = (tmp_path / "fw.ota").read_bytes()
    assert image == build_image(
        payload,
        vendor_id=0xFFF1,
        product_id=0x8000,
        software_version=7,
        software_version_string="1.7",
        digest=ota_image.digest_by_name("sha512"),
    )
    assert seen[-1] == (len(payload), len(payload)) and len(seen) == 3
    assert ota_image.read_header(tmp_path / "fw.ota") == header
    assert ota_image.verify_image(tmp_path / "fw.ota", vendor_id=0xFFF1) == header
    assert ota_image.extract_payload(tmp_path / "fw.ota", tmp_path / "out.bin") == header
    assert (tmp_path / "out.bin").read_bytes() == payload
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw.bin", "fw.ota", "out.bin"]


def test_verify_of_a_truncated_file_fails_before_hashing(tmp_path: Path) -> None:
    image = build_image(
        bytes(3 << 20), vendor_id=1, product_id=2, software_version=3, software_version_string="3"
    )
    (tmp_path / "cut.ota").write_bytes(image[:-1])
    seen: list[int] = []
    with pytest.raises(OtaImageError) as exc:
        ota_image.verify_image(tmp_path / "cut.ota", progress=lambda done, _: seen.append(done))
    assert exc.value.reason is Reason.TRUNCATED
    assert str(exc.value).startswith(f"truncated at byte {len(image) - 1}: ")
    assert seen == []  # refused from the file's length, no payload read


def test_images_from_a_pipe_are_checked_while_streaming(tmp_path: Path) -> None:
    image = build_image(
        b"x" * 100, vendor_id=1, product_id=2, software_version=3, software_version_string="3"
    )
    read_end, write_end = os.pipe()
    os.write(write_end, image[:-1])
    os.close(write_end)
    try:
        with pytest.raises(OtaImageError) as exc:
            ota_image.verify_image(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
    assert exc.value.reason is Reason.TRUNCATED
    assert str(exc.value).startswith(f"truncated at byte {len(image) - 1}: ")


def test_extract_leaves_nothing_behind_on_a_bad_image(tmp_path: Path) -> None:
    image = bytearray(
        build_image(
            b"payload" * 1000,
            vendor_id=1,
            product_id=2,
            software_version=3,
            software_version_string="3",
        )
    )
    image[-1] ^= 1
    (tmp_path / "bad.ota").write_bytes(image)
    with pytest.raises(OtaImageError) as exc:
        ota_image.extract_payload(tmp_path / "bad.ota", tmp_path / "out.bin")
    assert exc.value.reason is Reason.DIGEST_MISMATCH
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ota"]


def test_read_header_checks_the_file_length_without_reading_the_payload(tmp_path: Path) -> None:
    # A sparse 64 GiB image: the header read must not touch (or time out on) the payload.
    size = 64 << 30
    head, _ = ota_image.encode_header(
        vendor_id=1,
        product_id=2,
        software_version=3,
        software_version_string="3",
        payload_size=size,
        digest=bytes(32),
        algorithm=ota_image.DEFAULT_DIGEST,
        min_applicable_version=None,
        max_applicable_version=None,
        release_notes_url=None,
    )
    path = tmp_path / "huge.ota"
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + size)
    assert ota_image.read_header(path).payload_size == size
    with open(path, "r+b") as f:
        f.truncate(len(head) + size - 1)
    with pytest.raises(OtaImageError) as exc:
        ota_image.read_header(path)
    assert exc.value.reason is Reason.TRUNCATED
    assert str(exc.value).startswith(f"truncated at byte {len(head) + size - 1}: ")


# VmHWM, not ru_maxrss: the latter survives execve, so a child of a big pytest process would
# report its parent's size.
_RSS_PROBE = """
import re, sys
from matter_ota import ota_image
header = ota_image.verify_image(sys.argv[1])
status = open("/proc/self/status").read()
print(header.payload_size, re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_verify_runs_in_constant_memory() -> None:
    size = 256 << 20
    zeros = hashlib.sha256()
    block = bytes(1 << 20)
    for _ in range(size >> 20):
        zeros.update(block)
    head, _ = ota_image.encode_header(
        vendor_id=1,
        product_id=2,
        software_version=3,
        software_version_string="3",
        payload_size=size,
        digest=zeros.digest(),
        algorithm=ota_image.DEFAULT_DIGEST,
        min_applicable_version=None,
        max_applicable_version=None,
        release_notes_url=None,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "zeros.ota"
        with open(path, "wb") as f:
            f.write(head)
            f.truncate(len(head) + size)  # sparse: the test costs no disk
        daemon = str(Path(ota_image.__file__).parents[2])
        out = subprocess.run(
            [sys.executable, "-c", _RSS_PROBE, str(path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": daemon},
        )
    payload_size, max_rss_kib = map(int, out.stdout.split())
    assert payload_size == size
    assert max_rss_kib < 40 * 1024, f"verify of a 256 MiB image peaked at {max_rss_kib} KiB"
