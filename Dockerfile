# One image for `docker compose up train` and SageMaker training jobs (see docs/image.md).
# Every Python package comes from docker/requirements.lock (hash-checked); regenerate it with `make lock`.
# No `# syntax=` line: the engine's built-in BuildKit frontend handles this file, so nothing is fetched.

# Debian 12: its own Python 3.11 is the lock's target. CUDA comes from the nvidia-* wheels that torch and
# vLLM require (no CUDA base image, so the libraries are in the image once). Building without a registry:
# pass a locally made bookworm as BASE_IMAGE (scripts/image_test.sh does).
ARG BASE_IMAGE=debian:bookworm-slim@sha256:7b140f374b289a7c2befc338f42ebe6441b7ea838a042bbd5acbfca6ec875818

# --- the OS layer both stages share ---
FROM ${BASE_IMAGE} AS os
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# gcc, libc6-dev and python3.11-dev stay in the final image: Triton (vLLM, torch.compile) compiles a small
# C launcher against Python.h on a GPU's first kernel. tini: PID 1 must reap orphans (the code_exec sandbox
# kills whole process trees) and pass SIGTERM on to the launcher.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-dev gcc libc6-dev ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*

# --- builder: uv, the lock, and the three sdists that compile (nothing of it but /opt/venv ships) ---
FROM os AS builder
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential python3.11-venv \
    && rm -rf /var/lib/apt/lists/*

# uv from PyPI, hash-pinned, into its own venv (not /opt/venv, which ships).
ARG UV_VERSION=0.13.9
ARG UV_SHA256=d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19
# An optional build secret `ca-certificates` (a PEM bundle) is for networks whose HTTPS goes through their
# own certificate authority; it is read from /run/secrets only while a step runs, never stored in a layer.
RUN --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export PIP_CERT=/run/secrets/ca-certificates; fi \
    && python3.11 -m venv /opt/uv \
    && printf 'uv==%s --hash=sha256:%s\n' "${UV_VERSION}" "${UV_SHA256}" > /tmp/uv.txt \
    && /opt/uv/bin/pip install --no-cache-dir --require-hashes -r /tmp/uv.txt \
    && /opt/uv/bin/uv venv --python /usr/bin/python3.11 /opt/venv

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/opt/uv/bin:$PATH \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NATIVE_TLS=1
COPY docker/requirements.lock /opt/grpo-rlvr/requirements.lock

# Pass 1: every wheel (--no-build proves nothing else compiles). flash-attn is never built from source.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export SSL_CERT_FILE=/run/secrets/ca-certificates; fi \
    && printf 'flash-attn\ndeepspeed\nsagemaker-training\ninotify-simple\n' > /tmp/sdists.txt \
    && uv pip install --require-hashes --no-build -r /opt/grpo-rlvr/requirements.lock --excludes /tmp/sdists.txt

# Pass 2: the sdists, built against pass 1's torch and setuptools. DeepSpeed records the CUDA accelerator
# (a build without a GPU would pick the CPU one) and pre-builds no ops: there is no CUDA toolkit here, and
# the recipes use no DeepSpeed op (see docs/image.md).
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export SSL_CERT_FILE=/run/secrets/ca-certificates; fi \
    && printf 'flash-attn\n' > /tmp/late.txt \
    && DS_ACCELERATOR=cuda DS_BUILD_OPS=0 DS_SKIP_CUDA_CHECK=1 \
       uv pip install --require-hashes --no-build-isolation -r /opt/grpo-rlvr/requirements.lock \
       --excludes /tmp/late.txt

# flash-attn: a prebuilt wheel matching the lock's flash-attn, torch 2.13 / cu130 / cp311, checked against
# its SHA-256. Without one the image trains with sdpa (`grpo-rlvr env` says which attention it uses).
ARG FLASH_ATTN_WHEEL_URL=""
ARG FLASH_ATTN_WHEEL_SHA256=""
RUN --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export SSL_CERT_FILE=/run/secrets/ca-certificates; fi \
    && if [ -n "${FLASH_ATTN_WHEEL_URL}" ]; then \
        [ -n "${FLASH_ATTN_WHEEL_SHA256}" ] || { echo "FLASH_ATTN_WHEEL_SHA256 is required with FLASH_ATTN_WHEEL_URL" >&2; exit 1; }; \
        printf 'flash-attn @ %s --hash=sha256:%s\n' "${FLASH_ATTN_WHEEL_URL}" "${FLASH_ATTN_WHEEL_SHA256}" > /tmp/fa.txt \
        && uv pip install --no-cache --require-hashes --no-deps -r /tmp/fa.txt \
        && grep -q "^flash-attn==$(python -c 'import importlib.metadata as m; print(m.version("flash-attn"))') " \
             /opt/grpo-rlvr/requirements.lock; \
    fi

RUN uv pip check

# --- the image: the OS layer, /opt/venv, no uv, no build tools ---
FROM os

LABEL org.opencontainers.image.title="grpo-rlvr" \
      org.opencontainers.image.description="GRPO with verifiable rewards (TRL) for local Docker and SageMaker training" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      io.grpo-rlvr.python="3.11" \
      io.grpo-rlvr.cuda="13.0" \
      io.grpo-rlvr.versions.torch="2.13.0" \
      io.grpo-rlvr.versions.vllm="0.31.0" \
      io.grpo-rlvr.versions.trl="1.16.0" \
      io.grpo-rlvr.versions.transformers="5.17.0" \
      io.grpo-rlvr.versions.peft="0.21.2" \
      io.grpo-rlvr.versions.accelerate="1.15.0" \
      io.grpo-rlvr.versions.deepspeed="0.19.8" \
      io.grpo-rlvr.versions.flash-attn="2.8.3.post2" \
      io.grpo-rlvr.versions.bitsandbytes="0.50.2" \
      io.grpo-rlvr.versions.mlflow="3.17.2" \
      io.grpo-rlvr.versions.sagemaker-training="5.1.4"

# NVIDIA_*: what the NVIDIA container toolkit mounts for `--gpus` (the driver libraries and nvidia-smi).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HF_HOME=/cache/hf \
    GRPO_RLVR_RECIPES=/opt/grpo-rlvr/recipes

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/grpo-rlvr/requirements.lock /opt/grpo-rlvr/requirements.lock

# The CUDA libraries of the nvidia-* wheels and torch's own, known to the dynamic linker, so every library
# linked against them (vLLM's and bitsandbytes' extensions, deepspeed's JIT ops) resolves them without
# torch loaded first, as `ldd` shows. (pipefail: the SHELL of `os`.)
# hadolint ignore=DL4006
RUN site=/opt/venv/lib/python3.11/site-packages \
    && { find "$site/nvidia" -name 'lib*.so*' -printf '%h\n'; echo "$site/torch/lib"; } | sort -u \
        > /etc/ld.so.conf.d/python-wheels.conf \
    && ldconfig

# The project itself, last, so a code change rebuilds (and pushes) only these small layers: non-editable,
# offline, with the lock's pip and setuptools, resolving nothing (the lock already holds its deps).
COPY pyproject.toml README.md /opt/grpo-rlvr/pkg/
COPY src/ /opt/grpo-rlvr/pkg/src/
RUN pip install --no-cache-dir --no-deps --no-build-isolation --no-index /opt/grpo-rlvr/pkg \
    && pip check \
    && grpo-rlvr --help > /dev/null

COPY recipes/ /opt/grpo-rlvr/recipes/
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/entrypoint.sh

# The SageMaker layout; contents come from the host mount or from SageMaker, never from the image.
RUN mkdir -p /opt/ml/input/config /opt/ml/input/data /opt/ml/model /opt/ml/checkpoints \
             /opt/ml/output/data /cache/hf

WORKDIR /opt/ml
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/usr/local/bin/entrypoint.sh"]
CMD ["train"]
