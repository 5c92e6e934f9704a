"""The ledger's answers: strict validation (DclError naming the field) and version choice."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from dcl_server import model_version
from hypothesis import given, settings
from hypothesis import strategies as st

from matter_ota.ota_image import OtaImageError, build_image, verify_bytes
from matter_ota.sources.dcl_ledger import (
    DclError,
    decode_json,
    parse_model_version,
    parse_versions,
    select_version,
)
from matter_ota.sources.dcl_verify import ImageRejected, StreamingImageCheck

# The shape the MainNet answered for 4447/8194/1011 (python-matter-server's test sample).
AQARA = {
    "modelVersion": {
        "vid": 4447,
        "pid": 8194,
        "softwareVersion": 1011,
        "softwareVersionString": "1.0.1.1",
        "cdVersionNumber": 1,
        "firmwareInformation": "",
        "softwareVersionValid": True,
        "otaUrl": "https://example.invalid/fw.ota",
        "otaFileSize": "615708",
        "otaChecksum": "rFZ6WdH0DuuCf7HVoRmNjCF73mYZ98DGYpHoDKmf0Bw=",
        "otaChecksumType": 1,
        "minApplicableSoftwareVersion": 1000,
        "maxApplicableSoftwareVersion": 1010,
        "releaseNotesUrl": "",
        "creator": "cosmos1qpz3ghnqj6my7gzegkftzav9hpxymkx6zdk73v",
    }
}


def test_real_shape_parses() -> None:
    mv = parse_model_version(AQARA, 4447, 8194, 1011)
    assert mv.ota_file_size == 615708
    assert len(mv.ota_checksum) == 32
    assert (mv.min_applicable, mv.max_applicable) == (1000, 1010)
    assert mv.unusable_reason() is None
    assert mv.inapplicable_reason(1005) is None
    assert "applies to 1000..1010" in (mv.inapplicable_reason(999) or "")
    listing = {"modelVersions": {"vid": 4447, "pid": 8194, "softwareVersions": [1011, 1000]}}
    assert parse_versions(listing, 4447, 8194) == (1000, 1011)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(otaFileSize=615708), "modelVersion.otaFileSize"),
        (lambda d: d.update(otaFileSize="-1"), "modelVersion.otaFileSize"),
        (lambda d: d.update(otaChecksum="not base64!"), "modelVersion.otaChecksum"),
        (lambda d: d.update(vid=1), "modelVersion.vid"),
        (lambda d: d.update(softwareVersion=1012), "modelVersion.softwareVersion"),
        (lambda d: d.update(softwareVersionValid="yes"), "modelVersion.softwareVersionValid"),
        (lambda d: d.update(minApplicableSoftwareVersion=True), "modelVersion.minApplicable"),
        (lambda d: d.update(maxApplicableSoftwareVersion=1), "modelVersion.maxApplicable"),
        (lambda d: d.pop("vid"), "modelVersion.vid"),
        (lambda d: d.update(otaUrl=7), "modelVersion.otaUrl"),
        (lambda d: d.update(otaChecksumType=0), "modelVersion.otaUrl"),
    ],
)
def test_malformed_fields_are_named(mutate: Any, field: str) -> None:
    doc = copy.deepcopy(AQARA)
    mutate(doc["modelVersion"])
    with pytest.raises(DclError) as err:
        parse_model_version(doc, 4447, 8194, 1011)
    assert err.value.field.startswith(field)
    assert field.split(".")[1][:10] in str(err.value)


def test_listing_errors() -> None:
    with pytest.raises(DclError, match=r"modelVersions\.softwareVersions\[1\]"):
        parse_versions({"modelVersions": {"vid": 1, "pid": 2, "softwareVersions": [1, "2"]}}, 1, 2)
    with pytest.raises(DclError, match=r"modelVersions\.pid"):
        parse_versions({"modelVersions": {"vid": 1, "pid": 3, "softwareVersions": []}}, 1, 2)
    with pytest.raises(DclError, match="body"):
        decode_json(b"<html>gateway error</html>")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
keys = st.sampled_from(list(AQARA["modelVersion"]))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, json_values), json_values, st.binary(max_size=64))
def test_any_input_raises_only_dcl_error(fields: dict[str, Any], other: Any, raw: bytes) -> None:
    doc = copy.deepcopy(AQARA)
    doc["modelVersion"].update(fields)
    for candidate in (doc, other, {"modelVersion": other}, {"modelVersions": other}):
        for parse in (
            lambda d: parse_model_version(d, 4447, 8194, 1011),
            lambda d: parse_versions(d, 4447, 8194),
        ):
            with contextlib.suppress(DclError):
                parse(candidate)
    with contextlib.suppress(DclError):
        decode_json(raw)


def _mv(version: int, **kw: Any) -> Any:
    url = kw.pop("url", f"https://x.invalid/{version}.ota")
    doc = model_version(1, 2, version, url=url, size=100, checksum=b"\0" * 32, **kw)
    return parse_model_version({"modelVersion": doc}, 1, 2, version)


def test_selection_newest_applicable_and_reasons() -> None:
    versions = [
        _mv(2, max_applicable=1),
        _mv(3, min_applicable=2, max_applicable=2),
        _mv(4, min_applicable=3, max_applicable=3),
        _mv(5, valid=False),
        _mv(6, url="http://x.invalid/6.ota"),
    ]
    assert select_version(versions, 1).chosen == versions[0]
    assert select_version(versions, 2).chosen == versions[1]
    assert select_version(versions, 3).chosen == versions[2]
    none = select_version(versions, 4)
    assert none.chosen is None
    assert "softwareVersionValid is false" in none.reason
    assert "otaUrl is not https" in none.reason
    assert "DCL version 4 is not newer" in none.reason
    assert select_version([], 1).reason == "the DCL lists no software version for this product"


def test_every_iana_checksum_type_usable() -> None:
    # RFC 6920 / IANA Named Information: 1..12 (sha-256 and its truncations, sha-384/512, sha3)
    sizes = {1: 32, 2: 16, 3: 15, 4: 12, 5: 8, 6: 4, 7: 48, 8: 64, 9: 28, 10: 32, 11: 48, 12: 64}
    for type_id, size in sizes.items():
        doc = model_version(1, 2, 3, url="https://x.invalid/3.ota", size=9, checksum=b"\1" * size)
        doc["otaChecksumType"] = type_id
        mv = parse_model_version({"modelVersion": doc}, 1, 2, 3)
        assert mv.unusable_reason() is None
        assert mv.checksum_algorithm.size == size
        short = parse_model_version({"modelVersion": {**doc, "otaChecksum": "AAAA"}}, 1, 2, 3)
        assert "otaChecksum is 3 bytes" in (short.unusable_reason() or "")
    doc["otaChecksumType"] = 13
    mv = parse_model_version({"modelVersion": doc}, 1, 2, 3)
    assert mv.unusable_reason() == "DCL version 3: otaChecksumType 13 is not supported"


# -- the streaming image check agrees with the image module's verifier ----------------------

_IMAGE = build_image(
    bytes(range(256)) * 8,
    vendor_id=0xFFF1,
    product_id=0x8001,
    software_version=2,
    software_version_string="v2",
)
_MV_FFF1 = parse_model_version(
    {"modelVersion": model_version(0xFFF1, 0x8001, 2, url="https://x.invalid/2.ota", image=_IMAGE)},
    0xFFF1,
    0x8001,
    2,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(_IMAGE) - 1), st.integers(0, 255)), max_size=3),
    st.integers(-40, 40),
    st.lists(st.integers(1, 700), min_size=1, max_size=8),
)
def test_streaming_check_agrees_with_verify(
    flips: list[tuple[int, int]], cut: int, pieces: list[int]
) -> None:
    data = bytearray(_IMAGE)
    for at, value in flips:
        data[at] = value
    data = data[: len(data) + cut] if cut < 0 else data + bytes(cut)
    check = StreamingImageCheck()
    i = 0
    while i < len(data):
        for n in pieces:
            check.feed(bytes(data[i : i + n]))
            i += n
    try:
        verify_bytes(bytes(data), vendor_id=0xFFF1, product_id=0x8001, software_version=2)
        expected_ok = True
    except OtaImageError:
        expected_ok = False
    try:
        check.finish(_MV_FFF1)
        ok = True
    except ImageRejected:
        ok = False
    assert ok == expected_ok


@settings(max_examples=200, deadline=None)
@given(json_values, st.lists(json_values, max_size=3))
def test_a_damaged_cache_file_is_skipped_not_fatal(doc: Any, products: list[Any]) -> None:
    import json
    import tempfile
    from pathlib import Path

    from matter_ota.sources.dcl_client import read_answers, read_status

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        (state / "dcl").mkdir()
        for content in (
            doc,
            {"base_url": "https://x.invalid", "products": products},
            {"base_url": "https://x.invalid", "products": [{"vid": 1, "pid": 2, "raw": doc}]},
        ):
            (state / "dcl" / "ledger.json").write_text(json.dumps(content))
            (state / "dcl" / "status.json").write_text(json.dumps(content))
            assert isinstance(read_answers(state, "https://x.invalid"), dict)
            read_status(state, "https://x.invalid")
