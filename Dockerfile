# syntax=docker/dockerfile:1
#
# cutq worker image: `cutq worker` (Pub/Sub pull), `cutq serve` (Pub/Sub push) and
# `cutq worker --drain-idle-s N` (Cloud Run job) all run from it.
#
# Build (Cloud Build, no local Docker needed): see infra/cloudbuild.yaml and infra/README.md.
# Locally:   docker build -t cutq .
# With the InSPyReNet checkpoint baked in (file placed in infra/docker/checkpoints/):
#   docker build --build-arg INSPYRENET_CHECKPOINT=ckpt_base.pth \
#                --build-arg INSPYRENET_CHECKPOINT_SHA256=<sha256> -t cutq .
# With an ONNX model and its spec baked in (docs/models.md): the graph from a file in
# infra/docker/models/ or a URL fetched during the build, its SHA-256 mandatory, the spec
# (JSON) in infra/docker/models/; the worker then serves it (CUTQ_MODEL_SPEC):
#   docker build --build-arg MODEL_URL=https://…/model.onnx --build-arg MODEL_SHA256=<sha256> \
#                --build-arg MODEL_SPEC=birefnet.json -t cutq .
# The ONNX GPU image (onnxruntime-gpu for CUDA 12 and its nvidia-*-cu12 libraries, no torch:
# worker/runtime/onnx_builds.py): --build-arg EXTRAS=gpu-onnx --build-arg TORCH_VERSION=
#
# CUDA: the torch wheel carries its own CUDA runtime; Cloud Run mounts the NVIDIA driver, and
# the wheel's CUDA version must be one that driver runs. Cloud Run documents driver 535 (CUDA
# 12.2) for its L4 GPUs. NVIDIA's minor-version compatibility runs any CUDA 12.x build on a
# driver >= 525, while CUDA 13.x builds need >= 580. PyTorch 2.14 publishes CUDA 12.6, 13.0 and
# 13.2 builds only (12.8 went in 2.12; PyPI's default is 13.2), and its 2.15 plan drops 12.6:
# so torch 2.14.1 from the cu126 index, whose sm_86 code runs on the L4 (Ada, sm_89). Change
# these three together, to a row of worker/runtime/torch_builds.py (tests/unit/test_torch_builds.py
# checks it). An empty TORCH_INDEX_URL installs the default wheel from the package index.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- deps: the virtualenv with torch and every runtime dependency, no cutq code -----------
# Rebuilt only when the torch pins or pyproject.toml change, not on source edits.
FROM ${PYTHON_IMAGE} AS deps

ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Every install and build step is in infra/docker/build-steps.sh, which CI also runs in a
# fresh virtualenv (tools/check_installs.py): the image cannot depend on a dev-only package.
# EXTRAS=cpu,matting,heic with an empty TORCH_VERSION builds a CPU image with no torch at all.
# Both images take HEIC/HEIF inputs (the heic extra: pillow-heif).
ARG EXTRAS=gpu,inspyrenet,heic
COPY infra/docker/build-steps.sh infra/docker/stub_packages.py /opt/cutq/build/

# torch first, pinned, from the CUDA index; everything after resolves against it.
# (Build arguments reach RUN steps as environment variables: the script reads them there.)
RUN /opt/cutq/build/build-steps.sh torch

# Dependencies of '.[EXTRAS]' from pyproject.toml alone (stand-in packages, then removed),
# so only a pin or dependency change rebuilds this layer.
WORKDIR /src
COPY pyproject.toml ./
RUN /opt/cutq/build/build-steps.sh deps

# --- checkpoint: optional InSPyReNet weights baked into the image ------------------------
FROM ${PYTHON_IMAGE} AS checkpoint

ARG INSPYRENET_CHECKPOINT=""
ARG INSPYRENET_CHECKPOINT_SHA256=""

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY infra/docker/checkpoints/ /checkpoint-src/
RUN set -eu; \
    mkdir -p /opt/cutq/checkpoints; \
    if [ -n "$INSPYRENET_CHECKPOINT" ]; then \
        cp "/checkpoint-src/$INSPYRENET_CHECKPOINT" /opt/cutq/checkpoints/inspyrenet.pth; \
        if [ -n "$INSPYRENET_CHECKPOINT_SHA256" ]; then \
            echo "$INSPYRENET_CHECKPOINT_SHA256  /opt/cutq/checkpoints/inspyrenet.pth" | sha256sum -c -; \
        fi; \
    fi

# --- model: optional ONNX graph + spec baked into the image (infra/docker/bake_model.py) ----
FROM ${PYTHON_IMAGE} AS model

ARG MODEL_URL=""
ARG MODEL_SHA256=""
ARG MODEL_SPEC=""

COPY infra/docker/build-steps.sh infra/docker/bake_model.py /opt/cutq/build/
COPY infra/docker/models/ /model-src/
# Wrong or missing hash: the build stops here, saying so in one line.
RUN MODEL_SOURCE_DIR=/model-src MODEL_DIR=/opt/cutq/models /opt/cutq/build/build-steps.sh model

# --- runtime -----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG INSPYRENET_CHECKPOINT=""
ARG INSPYRENET_CHECKPOINT_SHA256=""
ARG MODEL_URL=""

# libGL/glib for OpenCV (imported by transparent-background); nothing else from the distro.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 cutq \
    && useradd --system --uid 10001 --gid cutq --create-home --home-dir /home/cutq cutq

# NUMBA_CPU_NAME=generic makes pymatting's numba cache (compiled below, at build time)
# valid on whatever CPU Cloud Run schedules the instance on, so no ~50 s JIT at start-up.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/cutq \
    XDG_CACHE_HOME=/home/cutq/.cache \
    TORCH_HOME=/home/cutq/.cache/torch \
    NUMBA_CPU_NAME=generic \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    PORT=8080

# Rarely changing layers first: weights, then the dependency virtualenv.
COPY --from=checkpoint /opt/cutq/checkpoints /opt/cutq/checkpoints
COPY --from=model /opt/cutq/models /opt/cutq/models
COPY --from=deps /opt/venv /opt/venv

# Pre-import (and so pre-compile) the heavy dependencies now instead of on the first job:
# torch/torchvision, OpenCV, timm/kornia/albumentations via transparent-background, and
# pymatting's numba kernels into NUMBA_CACHE_DIR (whichever of them this image has). numba
# only uses a cache directory it can write to, so it belongs to the runtime user.
COPY --from=deps /opt/cutq/build /opt/cutq/build
RUN mkdir -p "$NUMBA_CACHE_DIR" \
    && /opt/cutq/build/build-steps.sh warm \
    && chown -R cutq:cutq "$NUMBA_CACHE_DIR" /home/cutq

# The application itself: small, changes often, so last.
WORKDIR /opt/cutq/src
COPY pyproject.toml README.md ./
COPY core/ core/
COPY cli/ cli/
COPY submitter/ submitter/
COPY worker/ worker/
# The u2netp graphs for onnxruntime (the CPU engine) ship in the package beside the weights:
# installed and checked here (hashes, one forward), never exported at run time.
RUN /opt/cutq/build/build-steps.sh app

# The checkpoint path is set only when one was baked in; an empty value means "none"
# (CUTQ_CHECKPOINT from the Cloud Run configuration, e.g. a gs:// URI, then applies).
# Likewise CUTQ_MODEL_SPEC, set only when a model was baked in (empty: the bundled u2netp).
ENV CUTQ_CHECKPOINT=${INSPYRENET_CHECKPOINT:+/opt/cutq/checkpoints/inspyrenet.pth} \
    CUTQ_CHECKPOINT_SHA256=${INSPYRENET_CHECKPOINT_SHA256} \
    CUTQ_MODEL_SPEC=${MODEL_URL:+/opt/cutq/models/model.json}

WORKDIR /home/cutq
USER 10001:10001

# No HEALTHCHECK: Cloud Run ignores Docker health checks; readiness is the service's
# startup probe on /readyz and liveness on /healthz (infra/terraform/modules/cutq/run.tf).
EXPOSE 8080
ENTRYPOINT ["cutq"]
CMD ["worker"]
