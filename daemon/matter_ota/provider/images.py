"""Opening an offered image for BDX: a local release's file in the firmware folder, or a DCL
release's verified file in the DCL cache. The designator is a key, never a path from outside:
only the :class:`~matter_ota.policy.model.ImageInfo` the engine offered is opened."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from matter_ota.bdx.image_source import FileImage, ImageSource
from matter_ota.policy.model import ImageInfo

log = logging.getLogger("matter_ota.ota")

DclResolver = Callable[[str], Path | None]
"""A DCL designator -> the verified cached file (``sources.dcl_decide.resolve_designator``)."""


class ImageFiles:
    """Opens offered images by their designator: firmware folder first, then the DCL cache."""

    def __init__(self, firmware_dir: Path, dcl: DclResolver | None = None) -> None:
        self.firmware_dir = firmware_dir
        self.dcl = dcl

    def path(self, image: ImageInfo) -> Path | None:
        name = image.designator
        if self.dcl is not None:
            found = self.dcl(name)
            if found is not None:
                return found
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        return self.firmware_dir / name

    def __call__(self, image: ImageInfo) -> ImageSource | None:
        path = self.path(image)
        if path is None:
            return None
        try:
            opened = FileImage(path)
        except OSError as exc:
            log.warning("event=image_unreadable designator=%r error=%s", image.designator, exc)
            return None
        if opened.size != image.size:  # replaced under the release: never serve other bytes
            log.warning("event=image_changed designator=%r size=%d expected=%d",
                        image.designator, opened.size, image.size)
            opened.close()
            return None
        return opened
