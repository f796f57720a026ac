"""Real ICC profiles from Debian's packages (tools/install-icc-profiles.sh), for colour tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import ImageCms

PROFILES = {
    "adobe": Path("/usr/share/color/icc/compatibleWithAdobeRGB1998.icc"),  # icc-profiles-free
    "p3": Path("/usr/share/color/argyll/ref/DisplayP3.icm"),  # argyll-ref
    "cmyk": Path("/usr/share/color/icc/ghostscript/default_cmyk.icc"),  # libgs-common
}
INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
FLAGS = ImageCms.Flags.BLACKPOINTCOMPENSATION


def profiles() -> dict[str, ImageCms.ImageCmsProfile]:
    """The profiles; a test without them skips, or fails under CUTQ_REQUIRE_EMULATORS=1."""
    missing = [str(path) for path in PROFILES.values() if not path.is_file()]
    if missing:
        message = f"ICC profiles missing: {missing}; run `sh tools/install-icc-profiles.sh`"
        if os.environ.get("CUTQ_REQUIRE_EMULATORS", "") not in ("", "0"):
            pytest.fail(message)
        pytest.skip(message)
    return {name: ImageCms.getOpenProfile(str(path)) for name, path in PROFILES.items()}
