#!/usr/bin/env bash
# The worker image's install and build steps, in one place. The Dockerfile runs each step;
# CI runs the same steps in a fresh virtualenv (tools/check_installs.py, "docker-steps"),
# since no Docker engine is at hand there: a step that needs a package only the dev extra
# brings fails in CI, not in an image build.
#
#   build-steps.sh torch   torch (and torchvision) pinned, from TORCH_INDEX_URL (empty: the
#                          package index); nothing when TORCH_VERSION is empty (a CPU image)
#   build-steps.sh deps    every dependency of '.[EXTRAS]' from pyproject.toml alone (run in a
#                          folder holding pyproject.toml and stub_packages.py, no sources)
#   build-steps.sh app     cutq itself (no dependencies), its imports, the shipped u2netp
#                          graphs loaded and run once
#   build-steps.sh model   bake an ONNX graph and its spec into MODEL_DIR (bake_model.py):
#                          MODEL_URL (a file in MODEL_SOURCE_DIR, https:// or file://),
#                          MODEL_SHA256 (mandatory), MODEL_SPEC; nothing without MODEL_URL
#   build-steps.sh warm    pre-import (and so pre-compile) the heavy packages that are present
#   build-steps.sh app     (also) load the baked spec, if any, with cutq's own parser
#
# Settings (environment): TORCH_VERSION, TORCHVISION_VERSION, TORCH_INDEX_URL, EXTRAS
# (default gpu,inspyrenet,heic; a CPU image: EXTRAS=cpu,matting,heic and TORCH_VERSION empty;
# the ONNX GPU image: EXTRAS=gpu-onnx,heic and TORCH_VERSION empty), MODEL_* (above; MODEL_DIR
# default /opt/cutq/models).
set -euo pipefail

EXTRAS="${EXTRAS:-gpu,inspyrenet,heic}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

case "${1:-}" in
torch)
    if [ -z "${TORCH_VERSION:-}" ]; then
        echo "build-steps: no torch (TORCH_VERSION is empty: a CPU image)"
        exit 0
    fi
    packages=("torch==${TORCH_VERSION}")
    if [ -n "${TORCHVISION_VERSION:-}" ]; then
        packages+=("torchvision==${TORCHVISION_VERSION}")
    fi
    pip install --no-cache-dir ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${packages[@]}"
    ;;
deps)
    # Empty stand-ins for the packages pyproject.toml declares let pip resolve the project;
    # the stand-in itself is removed, so only a dependency change rebuilds this layer.
    python "$here/stub_packages.py" pyproject.toml
    pip install --no-cache-dir ".[${EXTRAS}]"
    pip uninstall --yes cutq
    ;;
app)
    pip install --no-cache-dir --no-deps .
    python -c "import cutq.core, cutq.cli, cutq.submitter, cutq.worker, onnxruntime, pillow_heif"
    # The graphs the CPU engine runs ship in the package: check their hashes and run one.
    python -m cutq.worker.models.u2netp_onnx
    baked="${MODEL_DIR:-/opt/cutq/models}/model.json"
    if [ -f "$baked" ]; then
        python -m cutq.worker.models.onnx_spec "$baked"
    fi
    ;;
model)
    python3 "$here/bake_model.py"
    ;;
warm)
    python - <<'PY'
import importlib.util

names = ("torch", "torchvision", "cv2", "pymatting", "transparent_background", "onnxruntime")
present = [name for name in names if importlib.util.find_spec(name) is not None]
for name in present:  # pymatting's import compiles its numba kernels into NUMBA_CACHE_DIR
    importlib.import_module(name)
print("warmed:", ", ".join(present))
if "torch" in present:
    import torch

    print("torch", torch.__version__, "cuda", torch.version.cuda)
PY
    ;;
*)
    echo "usage: build-steps.sh torch|deps|model|warm|app" >&2
    exit 2
    ;;
esac
