"""ImageURI rules (TC-SU-3.1) and the image opener's refusal of anything but a plain name."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matter_ota.policy.model import ImageInfo
from matter_ota.provider.images import ImageFiles
from matter_ota.provider.uri import (
    MAX_DESIGNATOR_IN_URI,
    MAX_URI_LENGTH,
    ImageUriError,
    check_designator,
    check_image_uri,
    designator_in_uri,
    image_uri,
    parse_image_uri,
)


def test_uri_shape() -> None:
    uri = image_uri(0xDEADBEEF, "fw-2.ota")
    assert uri == "bdx://00000000DEADBEEF/fw-2.ota"
    assert len(uri) >= 24 and uri.startswith("bdx://")
    assert parse_image_uri(uri) == (0xDEADBEEF, "fw-2.ota")
    assert check_image_uri(uri, 0xDEADBEEF) == "fw-2.ota"
    with pytest.raises(ImageUriError, match="names node"):
        check_image_uri(uri, 0xDEADBEEE)


def test_designators_are_percent_encoded_when_needed() -> None:
    assert designator_in_uri("a b/ü") == "a%20b/%C3%BC"
    uri = image_uri(1, "my image.ota")
    assert uri.endswith("/my%20image.ota") and check_image_uri(uri, 1) == "my%20image.ota"


@pytest.mark.parametrize("bad", [
    "BDX://0000000000000001/fw",          # scheme in upper case
    "bdx://000000000000001/fw.ota",        # 15 hex digits
    "bdx://00000000000000a1/fw.ota",       # lower-case hex
    "bdx://0000000000000001/",             # no path
    "bdx://0000000000000001/fw?x=1",       # query
    "bdx://0000000000000001/fw#frag",      # fragment
    "bdx://user@0000000000000001/fw.ota",  # user info
    "bdx://0000000000000001//fw.ota",      # empty segment
    "bdx://0000000000000001/f%zz.ota",     # broken escape
    "https://0000000000000001/fw.ota",
    "bdx://0000000000000001/" + "x" * 300,
])
def test_bad_uris_refused(bad: str) -> None:
    with pytest.raises(ImageUriError):
        parse_image_uri(bad)


@given(st.text(max_size=300))
def test_parse_raises_only_its_own_error(text: str) -> None:
    try:
        node, designator = parse_image_uri(text)
    except ImageUriError:
        return
    assert image_uri(node, designator).startswith("bdx://")


@given(st.integers(0, 2**64 - 1), st.text(min_size=1, max_size=60))
def test_every_uri_we_make_passes_the_checks(node: int, designator: str) -> None:
    try:
        uri = image_uri(node, designator)
    except ImageUriError:
        # An empty path segment (our designators are file names), or a name that takes more
        # than the 256 characters once percent-encoded (refused where releases are made).
        assert "/" in designator or len(designator_in_uri(designator)) > MAX_DESIGNATOR_IN_URI
        return
    assert len(uri) <= MAX_URI_LENGTH
    assert check_image_uri(uri, node) == designator_in_uri(designator)


@pytest.mark.parametrize(("designator", "fits"), [
    ("a" * 233, True), ("a" * 234, False),            # 6 + 16 + 1 + 233 = 256
    ("\u00e9" * 38, True), ("\u00e9" * 39, False),   # 6 characters each once encoded
    ("\U0001F600" * 19, True), ("\U0001F600" * 20, False),  # 12 each: 228 and 240
])
def test_designator_bound_is_the_256_character_uri(designator: str, fits: bool) -> None:
    if fits:
        uri = image_uri(2**64 - 1, designator)
        assert len(uri) <= MAX_URI_LENGTH and check_designator(designator) in uri
    else:
        with pytest.raises(ImageUriError, match="at most 233"):
            check_designator(designator)
        with pytest.raises(ImageUriError):
            image_uri(1, designator)


def _info(name: str, size: int) -> ImageInfo:
    return ImageInfo(0xFFF1, 0x8001, 2, "2.0", size, b"", name)


def test_opener_serves_only_plain_names_of_the_right_size(tmp_path: Path) -> None:
    (tmp_path / "fw").mkdir()
    (tmp_path / "fw" / "a.ota").write_bytes(b"x" * 10)
    (tmp_path / "secret").write_bytes(b"y" * 10)
    files = ImageFiles(tmp_path / "fw")
    opened = files(_info("a.ota", 10))
    assert opened is not None and opened.read_at(0, 4) == b"xxxx"
    opened.close()
    for name in ("../secret", "/etc/passwd", ".hidden", "", "sub\\x"):
        assert files(_info(name, 10)) is None
    assert files(_info("a.ota", 11)) is None  # replaced under the release: not served
    assert files(_info("missing.ota", 10)) is None
