"""What the Distributed Compliance Ledger says about a product's software versions.

Pure code: it validates the JSON the DCL REST API answers (strictly; every refusal is a
:class:`DclError` naming the field) and picks the version a device should get. No I/O.

Shapes (DCL REST, module ``model``; see zigbee-alliance/distributed-compliance-ledger
docs/transactions/model.md):

- ``GET /dcl/model/versions/{vid}/{pid}`` ->
  ``{"modelVersions": {"vid": 4447, "pid": 8194, "softwareVersions": [1000, 1011]}}``;
  HTTP 404 means the product has no versions.
- ``GET /dcl/model/versions/{vid}/{pid}/{sv}`` -> ``{"modelVersion": {...}}`` with
  ``softwareVersionValid``, ``otaUrl``, ``otaFileSize`` (a uint64 rendered as a *string*),
  ``otaChecksum`` (base64), ``otaChecksumType`` (an IANA Named Information hash id),
  ``min/maxApplicableSoftwareVersion``. The ledger renders unset optional fields as ``""``/``0``;
  the four ``ota*`` fields are either all set or all unset.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from matter_ota.ota_image import DIGESTS, DigestAlgorithm

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class DclError(Exception):
    """A DCL answer that cannot be trusted; ``field`` names the offending JSON field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"DCL answer: {field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ModelVersion:
    """One ``modelVersion`` entry of the ledger, validated."""

    vid: int
    pid: int
    software_version: int
    software_version_string: str
    valid: bool
    ota_url: str
    ota_file_size: int
    ota_checksum: bytes
    ota_checksum_type: int
    min_applicable: int
    max_applicable: int
    release_notes_url: str

    @property
    def checksum_algorithm(self) -> DigestAlgorithm:
        """The otaChecksumType: an IANA Named Information hash id, as the image format's."""
        return DIGESTS[self.ota_checksum_type]

    def unusable_reason(self) -> str | None:
        """Why no device may get this version from us, or None."""
        v = self.software_version
        if not self.valid:
            return f"DCL version {v}: softwareVersionValid is false"
        if not self.ota_url:
            return f"DCL version {v}: no otaUrl"
        if not self.ota_url.lower().startswith("https://"):
            return f"DCL version {v}: otaUrl is not https ({self.ota_url.split(':', 1)[0]}://)"
        algorithm = DIGESTS.get(self.ota_checksum_type)
        if algorithm is None:
            return f"DCL version {v}: otaChecksumType {self.ota_checksum_type} is not supported"
        if len(self.ota_checksum) != algorithm.size:
            return (
                f"DCL version {v}: otaChecksum is {len(self.ota_checksum)} bytes, "
                f"{algorithm.iana_name} needs {algorithm.size}"
            )
        if self.ota_file_size <= 0:
            return f"DCL version {v}: otaFileSize is 0"
        return None

    def inapplicable_reason(self, current: int) -> str | None:
        """Why a device running ``current`` may not take this version, or None."""
        v = self.software_version
        if v <= current:
            return f"DCL version {v} is not newer than the device's {current}"
        if not self.min_applicable <= current <= self.max_applicable:
            return (
                f"DCL version {v} applies to {self.min_applicable}..{self.max_applicable}, "
                f"the device runs {current}"
            )
        return None


@dataclass(frozen=True)
class Selection:
    """The ledger's answer for one device: the chosen version and why the others were not."""

    chosen: ModelVersion | None
    rejected: tuple[str, ...]

    @property
    def reason(self) -> str:
        if self.chosen is not None:
            return f"DCL version {self.chosen.software_version} applies"
        if not self.rejected:
            return "the DCL lists no software version for this product"
        return "no DCL version applies: " + "; ".join(self.rejected)


def select_version(versions: Iterable[ModelVersion], current: int) -> Selection:
    """The newest usable version applicable to a device running ``current``."""
    rejected: list[str] = []
    for mv in sorted(versions, key=lambda m: m.software_version, reverse=True):
        reason = mv.unusable_reason() or mv.inapplicable_reason(current)
        if reason is None:
            return Selection(mv, tuple(rejected))
        rejected.append(reason)
    return Selection(None, tuple(rejected))


# -- strict JSON validation -------------------------------------------------------------------


def decode_json(body: bytes) -> Any:
    """Parse an HTTP body as JSON, or raise :class:`DclError`."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise DclError("body", f"not JSON ({exc})") from None


def _object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DclError(field, f"expected an object, got {type(value).__name__}")
    return value


def _int(obj: Mapping[str, Any], field: str, path: str, maximum: int, default: int | None) -> int:
    value = obj.get(field, default)
    if value is None:
        raise DclError(f"{path}.{field}", "missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise DclError(f"{path}.{field}", f"expected an integer, got {value!r:.40}")
    if not 0 <= value <= maximum:
        raise DclError(f"{path}.{field}", f"{value} out of range 0..{maximum}")
    return value


def _str(obj: Mapping[str, Any], field: str, path: str, max_len: int = 1024) -> str:
    value = obj.get(field, "")
    if not isinstance(value, str):
        raise DclError(f"{path}.{field}", f"expected a string, got {value!r:.40}")
    if len(value) > max_len:
        raise DclError(f"{path}.{field}", f"longer than {max_len} characters")
    return value


def _expect(actual: int, expected: int, field: str) -> None:
    if actual != expected:
        raise DclError(field, f"is {actual}, asked for {expected}")


def parse_versions(doc: object, vid: int, pid: int) -> tuple[int, ...]:
    """``modelVersions.softwareVersions`` of a ``/dcl/model/versions/{vid}/{pid}`` answer."""
    mv = _object(_object(doc, "body").get("modelVersions"), "modelVersions")
    _expect(_int(mv, "vid", "modelVersions", U16_MAX, None), vid, "modelVersions.vid")
    _expect(_int(mv, "pid", "modelVersions", U16_MAX, None), pid, "modelVersions.pid")
    versions = mv.get("softwareVersions")
    if not isinstance(versions, list):
        raise DclError("modelVersions.softwareVersions", "expected a list")
    out: list[int] = []
    for i, v in enumerate(versions):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= U32_MAX:
            raise DclError(f"modelVersions.softwareVersions[{i}]", f"not a uint32: {v!r:.40}")
        out.append(v)
    return tuple(sorted(set(out)))


def parse_model_version(doc: object, vid: int, pid: int, software_version: int) -> ModelVersion:
    """The ``modelVersion`` of a ``/dcl/model/versions/{vid}/{pid}/{sv}`` answer."""
    p = "modelVersion"
    mv = _object(_object(doc, "body").get(p), p)
    _expect(_int(mv, "vid", p, U16_MAX, None), vid, f"{p}.vid")
    _expect(_int(mv, "pid", p, U16_MAX, None), pid, f"{p}.pid")
    _expect(_int(mv, "softwareVersion", p, U32_MAX, None), software_version, f"{p}.softwareVersion")
    valid = mv.get("softwareVersionValid")
    if not isinstance(valid, bool):
        raise DclError(f"{p}.softwareVersionValid", f"expected true or false, got {valid!r:.40}")
    url = _str(mv, "otaUrl", p, 256)
    size_text = mv.get("otaFileSize", "0")
    if not isinstance(size_text, str) or not size_text.isascii() or not size_text.isdigit():
        raise DclError(f"{p}.otaFileSize", f"expected a decimal string, got {size_text!r:.40}")
    size = int(size_text)
    if size > U64_MAX:
        raise DclError(f"{p}.otaFileSize", "out of range of uint64")
    checksum_text = _str(mv, "otaChecksum", p, 128)
    try:
        checksum = base64.b64decode(checksum_text, validate=True)
    except (binascii.Error, ValueError):
        raise DclError(f"{p}.otaChecksum", "not base64") from None
    checksum_type = _int(mv, "otaChecksumType", p, U16_MAX, 0)
    if url and not (size and checksum and checksum_type):
        raise DclError(f"{p}.otaUrl", "set without otaFileSize, otaChecksum and otaChecksumType")
    minimum = _int(mv, "minApplicableSoftwareVersion", p, U32_MAX, 0)
    maximum = _int(mv, "maxApplicableSoftwareVersion", p, U32_MAX, 0)
    if maximum < minimum:
        raise DclError(f"{p}.maxApplicableSoftwareVersion", f"{maximum} is below the minimum")
    return ModelVersion(
        vid=vid,
        pid=pid,
        software_version=software_version,
        software_version_string=_str(mv, "softwareVersionString", p, 64),
        valid=valid,
        ota_url=url,
        ota_file_size=size,
        ota_checksum=checksum,
        ota_checksum_type=checksum_type,
        min_applicable=minimum,
        max_applicable=maximum,
        release_notes_url=_str(mv, "releaseNotesUrl", p, 256),
    )
