#!/bin/sh
# Real ICC profiles for the colour test (tests/integration/test_colour.py), from Debian's
# packages: Adobe RGB-compatible (icc-profiles-free), Display P3 (argyll-ref) and Artifex's
# CMYK SWOP (libgs-common). CI calls this before the tests; the test fails under
# CUTQ_REQUIRE_EMULATORS=1 without them.
set -eu
if [ -f /usr/share/color/icc/compatibleWithAdobeRGB1998.icc ] \
    && [ -f /usr/share/color/argyll/ref/DisplayP3.icm ] \
    && [ -f /usr/share/color/icc/ghostscript/default_cmyk.icc ]; then
    exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    icc-profiles-free argyll-ref libgs-common
