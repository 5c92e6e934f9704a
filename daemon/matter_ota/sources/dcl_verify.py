"""The image check of a DCL download: its OTA header must describe what the ledger lists.

A file that matches the ledger's size and checksum can still be the wrong image (a vendor
uploading the build of another product under this entry). Before serving it we verify it as an
OTA image (Matter Core spec 11.21.2: prefix, header, sizes, payload digest; streaming, constant
memory) whose VendorID, ProductID and SoftwareVersion are the ledger's.
"""

from __future__ import annotations

from pathlib import Path

from matter_ota.ota_image import OtaImageError, verify_image
from matter_ota.sources.dcl_download import ImageRejected
from matter_ota.sources.dcl_ledger import ModelVersion


def check_ota_image(path: Path, mv: ModelVersion) -> None:
    """Raise :class:`ImageRejected` unless ``path`` is the OTA image the ledger describes."""
    try:
        verify_image(
            path,
            vendor_id=mv.vid,
            product_id=mv.pid,
            software_version=mv.software_version,
        )
    except OtaImageError as exc:
        raise ImageRejected(f"{exc.reason}: {exc.message}") from None
