#!/bin/sh
# Chromium for the `cutq report` page test (tests/integration/test_report.py): Debian's package.
# CI calls this before the tests; the test fails under CUTQ_REQUIRE_EMULATORS=1 without it.
set -eu
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
