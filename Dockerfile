# syntax=docker/dockerfile:1.7
# One image for `docker compose up train` and SageMaker training jobs (see docs/image.md).
# Every Python package comes from docker/requirements.lock (hash-checked); regenerate it with `make lock`.

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# CUDA 13.0 devel: torch 2.13.0's default wheel is cu130, and nvcc 13.0 matches it exactly for
# DeepSpeed's JIT ops and the flash-attn source build. Ubuntu 24.04's python3 is 3.12, the lock's target.
FROM nvidia/cuda:13.0.3-cudnn-devel-ubuntu24.04@sha256:0230b7f243483cb15969fa3cc724a9459599604427052fc2a0d4291c7c0647dd

# flash-attn: give a prebuilt wheel matching torch 2.13 / cu130 / cp312 to skip a long source build;
# BUILD_FLASH_ATTN=0 leaves it out (transformers then uses the `kernels` hub build or sdpa).
ARG FLASH_ATTN_WHEEL_URL=""
ARG BUILD_FLASH_ATTN=1
ARG MAX_JOBS=4
ARG FLASH_ATTN_CUDA_ARCHS="80;90;100;120"
# DeepSpeed's default arch list for CUDA 13 is unusable without a GPU at build time.
ARG TORCH_CUDA_ARCH_LIST="8.0;9.0;10.0;12.0"
# 0: DeepSpeed builds its ops just in time on first use (nvcc is in this image); 1: pre-build them here.
ARG DS_BUILD_OPS=0

LABEL org.opencontainers.image.title="grpo-rlvr" \
      org.opencontainers.image.description="GRPO with verifiable rewards (TRL) for local Docker and SageMaker training" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="docker.io/nvidia/cuda:13.0.3-cudnn-devel-ubuntu24.04" \
      io.grpo-rlvr.python="3.12" \
      io.grpo-rlvr.cuda="13.0.3" \
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

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    HF_HOME=/cache/hf \
    GRPO_RLVR_RECIPES=/opt/grpo-rlvr/recipes

# gcc and python3-dev: sagemaker-training ships only an sdist with a C extension. tini: PID 1 must reap
# orphans (the code_exec sandbox kills whole process trees) and pass SIGTERM on to the launcher.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-dev build-essential ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*

COPY --from=uv /uv /usr/local/bin/uv
RUN uv venv --python /usr/bin/python3.12 /opt/venv

# Three passes over the same lock: everything that has a wheel (or builds in isolation), then the two
# sdists that must compile against the torch installed by the first pass.
COPY docker/requirements.lock /opt/grpo-rlvr/requirements.lock
RUN --mount=type=cache,target=/root/.cache/uv \
    printf 'deepspeed\nflash-attn\n' > /tmp/late.txt \
    && uv pip install --require-hashes -r /opt/grpo-rlvr/requirements.lock --excludes /tmp/late.txt

RUN --mount=type=cache,target=/root/.cache/uv \
    printf 'flash-attn\n' > /tmp/late.txt \
    && DS_BUILD_OPS=${DS_BUILD_OPS} DS_SKIP_CUDA_CHECK=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} \
       uv pip install --require-hashes --no-build-isolation -r /opt/grpo-rlvr/requirements.lock \
       --excludes /tmp/late.txt

RUN --mount=type=cache,target=/root/.cache/uv \
    if [ -n "${FLASH_ATTN_WHEEL_URL}" ]; then \
        uv pip install --no-deps "${FLASH_ATTN_WHEEL_URL}"; \
    elif [ "${BUILD_FLASH_ATTN}" = "1" ]; then \
        FLASH_ATTENTION_FORCE_BUILD=TRUE MAX_JOBS=${MAX_JOBS} FLASH_ATTN_CUDA_ARCHS=${FLASH_ATTN_CUDA_ARCHS} \
        TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} \
        uv pip install --require-hashes --no-build-isolation -r /opt/grpo-rlvr/requirements.lock; \
    fi

# The project itself, non-editable and without resolving anything new: the lock already holds its deps.
COPY pyproject.toml README.md /opt/grpo-rlvr/pkg/
COPY src/ /opt/grpo-rlvr/pkg/src/
RUN uv pip install --no-deps --no-build-isolation /opt/grpo-rlvr/pkg \
    && uv pip check \
    && grpo-rlvr --help > /dev/null

COPY recipes/ /opt/grpo-rlvr/recipes/
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/entrypoint.sh

# The SageMaker layout; contents come from the host mount or from SageMaker, never from the image.
RUN mkdir -p /opt/ml/input/config /opt/ml/input/data /opt/ml/model /opt/ml/checkpoints \
             /opt/ml/output/data /cache/hf

WORKDIR /opt/ml
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/usr/local/bin/entrypoint.sh"]
CMD ["train"]
