#!/usr/bin/env bash
# Installs checkov into its own virtualenv (.cache/checkov-venv, git-ignored).
#
# checkov cannot share the project's virtualenv: it pins packaging<24 and networkx<2.7
# (pytest 9 needs packaging>=24; scikit-image, pulled in by the inspyrenet extra, needs
# networkx>=3) and its bc-python-hcl2 dependency installs a module named `hcl2` over
# python-hcl2's. tests/infra/test_checkov.py finds it here (or via $CUTQ_CHECKOV / PATH).
set -euo pipefail

CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${CHECKOV_VENV:-$root/.cache/checkov-venv}"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/checkov" ] && "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
    echo "checkov $CHECKOV_VERSION already in $venv"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
"$venv/bin/checkov" --version
