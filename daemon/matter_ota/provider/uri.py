"""The ImageURI of a QueryImageResponse: ``bdx://<provider node id>/<file designator>``.

Matter Core 11.20.6.5.2.3 (ImageURI) and the provider cases of the test plan (TC-SU-3.1): the
scheme is ``bdx`` in lower case, the host exactly 16 upper-case hex digits equal to the
provider's operational node id on the requestor's fabric, no user info, query or fragment,
a path of valid URI characters, 24 characters or more in all.
"""

from __future__ import annotations

import re
from urllib.parse import quote

SCHEME = "bdx://"
MAX_URI_LENGTH = 256  # 11.20.6.5.2: ImageURI is a string of at most 256 characters
MIN_URI_LENGTH = 24  # "bdx://" + 16 hex digits + "/" + at least one character
# What is left of the 256 for the designator (percent-encoded) after "bdx://<16 hex>/".
MAX_DESIGNATOR_IN_URI = MAX_URI_LENGTH - len(SCHEME) - 16 - 1

# RFC 3986 pchar (unreserved, pct-encoded, sub-delims, ":" and "@") plus "/" between segments.
_PATH_SAFE = "-._~!$&'()*+,;=:@/"
_URI = re.compile(r"^bdx://([0-9A-F]{16})/([A-Za-z0-9\-._~!$&'()*+,;=:@/%]+)$")


class ImageUriError(ValueError):
    """An ImageURI that breaks the rules above."""


def designator_in_uri(designator: str) -> str:
    """``designator`` as it appears in the URI path (and so in the requestor's ReceiveInit):
    URI-safe characters kept, anything else percent-encoded (UTF-8)."""
    return quote(designator, safe=_PATH_SAFE)


def check_designator(designator: str) -> str:
    """``designator`` as it appears in the URI, when an ImageURI can carry it (at most
    :data:`MAX_DESIGNATOR_IN_URI` characters once percent-encoded); ImageUriError otherwise.
    Where designators are made (releases, image imports) this refuses names that would
    overflow the 256-character ImageURI."""
    in_uri = designator_in_uri(designator)
    if len(in_uri) > MAX_DESIGNATOR_IN_URI:
        raise ImageUriError(
            f"file designator {designator[:40]!r}{'...' if len(designator) > 40 else ''} is "
            f"{len(in_uri)} characters in the ImageURI; at most {MAX_DESIGNATOR_IN_URI} fit "
            f"(an ImageURI has at most {MAX_URI_LENGTH}, Matter Core 11.20.6.5.2)")
    return in_uri


def image_uri(provider_node_id: int, designator: str) -> str:
    """The ImageURI naming ``designator`` on the provider ``provider_node_id``."""
    if not 0 <= provider_node_id < 1 << 64:
        raise ImageUriError(f"node id {provider_node_id:#x} is not 64-bit")
    uri = f"{SCHEME}{provider_node_id:016X}/{check_designator(designator)}"
    check_image_uri(uri, provider_node_id)
    return uri


def parse_image_uri(uri: str) -> tuple[int, str]:
    """(provider node id, file designator) of a valid ImageURI; ImageUriError otherwise."""
    if not MIN_URI_LENGTH <= len(uri) <= MAX_URI_LENGTH:
        raise ImageUriError(f"ImageURI of {len(uri)} characters (24 to 256)")
    m = _URI.match(uri)
    if m is None:
        raise ImageUriError(f"{uri!r} is not bdx://<16 upper-case hex digits>/<path>")
    path = m.group(2)
    if path.startswith("/") or "//" in path or re.search(r"%(?![0-9A-Fa-f]{2})", path):
        raise ImageUriError(f"{uri!r}: malformed path")
    return int(m.group(1), 16), path


def check_image_uri(uri: str, provider_node_id: int) -> str:
    """The designator of ``uri`` after every TC-SU-3.1 check, including that its host is
    ``provider_node_id``; ImageUriError otherwise (the requestor's own checks)."""
    node, designator = parse_image_uri(uri)
    if node != provider_node_id:
        raise ImageUriError(f"ImageURI names node {node:016X}, the provider is "
                            f"{provider_node_id:016X}")
    return designator
