# Every target runs with the project environment, .venv, which `make test` and `make smoke` create or
# refresh from docker/requirements.lock whenever it or pyproject.toml changes (scripts/dev_env.py).
# Override PY to use another interpreter as it is.
PYTHON ?= python3.11
VENV := .venv
PY ?= $(VENV)/bin/python
BIN := $(dir $(PY))
ENV_STAMP := $(if $(filter $(VENV)/bin/python,$(PY)),$(VENV)/.synced)
IMAGE ?= grpo-rlvr:latest
OPT_ML ?= opt_ml
RECIPE ?= qwen2.5-0.5b-gsm8k
# GSM8K as shipped with the package (src/grpo_rlvr/gsm8k_data, MIT): no hub needed. Any prepare source works.
DATA_SOURCE ?= builtin:gsm8k
LOCK ?= docker/requirements.lock
ECR_REPOSITORY ?= grpo-rlvr
TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
EVAL_ARGS ?=
LAUNCH_ARGS ?= --help

DOCKER ?= docker
BUILD_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets and what each does (the default)
	@awk -F ':.*## ' '/^[a-z-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(firstword $(MAKEFILE_LIST))

env: $(ENV_STAMP) ## create or refresh .venv with the lock's versions (CPU torch where pip's find-links has it)

$(VENV)/.synced: pyproject.toml $(LOCK) scripts/dev_env.py
	$(PYTHON) scripts/dev_env.py --venv $(VENV) --lock $(LOCK)
	@touch $@

.PHONY: help build image-test lock env data train smoke reproduce-mini reproduce-mini-code test lint bench eval push launch gpu-check

# BuildKit through buildx (Docker 23+), or the 20.10+ client's own BuildKit: no frontend image is fetched.
build: ## the training image, e.g. make build BUILD_ARGS="--build-arg FLASH_ATTN_WHEEL_URL=..."
	DOCKER_BUILDKIT=1 $(DOCKER) build $(BUILD_ARGS) -t $(IMAGE) .

gpu-check: $(ENV_STAMP) ## wheelhouse for bench/gpu_check.sh (the one-shot GPU acceptance run) in build/gpu-check, <= 60 MiB
	$(PY) bench/gpu_wheelhouse.py --out build/gpu-check

image-test: $(ENV_STAMP) ## engine, locally made base, build, then tests/image against the image (root on Debian 12)
	IMAGE=$(IMAGE) PY=$(PY) scripts/image_test.sh

lock: ## re-resolve docker/requirements.lock for linux x86_64 / Python 3.11 (no builds, see docker/uv.toml)
	$(BIN)uv pip compile docker/requirements.in --config-file docker/uv.toml \
		--python-platform x86_64-manylinux_2_28 --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" --quiet --output-file $(LOCK)

data: $(ENV_STAMP) ## GSM8K channels and SageMaker config JSONs in ./opt_ml, as SageMaker would lay them out
	$(PY) scripts/local_opt_ml.py --check --recipe $(RECIPE)
	$(PY) -m grpo_rlvr.cli prepare --source $(DATA_SOURCE) --out $(OPT_ML)/input/data
	$(PY) scripts/local_opt_ml.py --opt-ml $(OPT_ML) --recipe $(RECIPE)

train: ## GPU training in the image, with the mlflow service
	docker compose up --exit-code-from train train

# A run that left output/failure (interrupted, or failed) resumes from its checkpoints, as the failure
# file says; otherwise, or with FRESH=1, the smoke tree is cleared first.
smoke: $(ENV_STAMP) ## CPU end-to-end GRPO run through the container's launcher, on real GSM8K rows, in $(OPT_ML)/smoke
	$(if $(strip $(OPT_ML)),,$(error OPT_ML is empty: refusing to clear /smoke))
	@if [ -f "$(OPT_ML)/smoke/output/failure" ] && [ "$(FRESH)" != 1 ]; then \
		echo "smoke: resuming the stopped run in $(OPT_ML)/smoke (FRESH=1 starts over)"; \
		find "$(OPT_ML)/smoke" -mindepth 1 -maxdepth 1 ! -name checkpoints -exec rm -rf -- {} +; \
	else \
		echo "smoke: a fresh run in $(OPT_ML)/smoke"; rm -rf -- "$(OPT_ML)/smoke"; \
	fi
	$(PY) -m grpo_rlvr.cli prepare --source $(DATA_SOURCE) --val-fraction 0 --out "$(OPT_ML)/smoke/input/data"
	$(PY) scripts/local_opt_ml.py --opt-ml "$(OPT_ML)/smoke" --recipe smoke-cpu --instance-type local
	SAGEMAKER_BASE_DIR="$(OPT_ML)/smoke" $(PY) -m grpo_rlvr.cli launch
	@echo "smoke: model and run_summary.json in $(OPT_ML)/smoke/model, checkpoints in $(OPT_ML)/smoke/checkpoints"

SIZE ?= full
reproduce-mini: $(ENV_STAMP) ## CPU miniature reproduction: warm-up, GRPO, held-out base vs trained (SIZE=small: a quick look)
	$(PY) -m grpo_rlvr.reproduce --out reproduce-mini --size $(SIZE)

reproduce-mini-code: $(ENV_STAMP) ## CPU miniature code reproduction: warm-up, GRPO on code_exec, held-out pass@1 base vs trained (SIZE=small: a quick look)
	$(PY) -m grpo_rlvr.reproduce_code --out reproduce-mini-code --size $(SIZE)

test: $(ENV_STAMP) ## the test suite (pytest, CPU)
	$(PY) -m pytest

lint: $(ENV_STAMP) ## ruff, hadolint, shellcheck
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(BIN)hadolint --failure-threshold error Dockerfile
	$(BIN)shellcheck docker/entrypoint.sh scripts/push_ecr.sh scripts/image_test.sh

bench: $(ENV_STAMP) ## CPU benchmarks: reward throughput, prompt building, wrapper overhead vs bare TRL, start-up, time to a config error
	$(PY) bench/cpu.py

eval: $(ENV_STAMP) ## evaluate a model, e.g. make eval EVAL_ARGS="--model opt_ml/model ..."
	$(PY) -m grpo_rlvr.cli evaluate $(EVAL_ARGS)

push: ## build tag -> ECR (creates the repository if missing)
	scripts/push_ecr.sh --image $(IMAGE) --repository $(ECR_REPOSITORY) --tag $(TAG)

launch: $(ENV_STAMP) ## SageMaker training job, e.g. make launch LAUNCH_ARGS="--image-uri ... --dry-run"
	$(PY) scripts/launch_sagemaker.py $(LAUNCH_ARGS)
