# Every target runs with the project venv (`.ci/run` creates it); override PY to use another interpreter.
PY ?= .venv/bin/python
BIN := $(dir $(PY))
IMAGE ?= grpo-rlvr:latest
OPT_ML ?= opt_ml
RECIPE ?= qwen2.5-0.5b-gsm8k
# GSM8K from ../shared when present (no hub needed), else from the Hugging Face hub.
DATA_SOURCE ?= $(if $(wildcard ../shared/data/gsm8k/train.jsonl),../shared/data/gsm8k/train.jsonl,openai/gsm8k)
LOCK ?= docker/requirements.lock
ECR_REPOSITORY ?= grpo-rlvr
TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
EVAL_ARGS ?=
LAUNCH_ARGS ?= --help

.PHONY: build lock data train smoke reproduce-mini test lint bench eval push launch

build: ## the training image
	docker build -t $(IMAGE) .

lock: ## re-resolve docker/requirements.lock for linux x86_64 / Python 3.12 (no builds, see docker/uv.toml)
	$(BIN)uv pip compile docker/requirements.in --config-file docker/uv.toml \
		--python-platform x86_64-manylinux_2_28 --python-version 3.12 \
		--generate-hashes --custom-compile-command "make lock" --quiet --output-file $(LOCK)

data: ## GSM8K channels and SageMaker config JSONs in ./opt_ml, as SageMaker would lay them out
	$(PY) -m grpo_rlvr.cli prepare --source $(DATA_SOURCE) --out $(OPT_ML)/input/data
	$(PY) scripts/local_opt_ml.py --opt-ml $(OPT_ML) --recipe $(RECIPE)

train: ## GPU training in the image, with the mlflow service
	docker compose up --exit-code-from train train

smoke: ## CPU end-to-end GRPO run through the container's launcher, on real GSM8K rows, in $(OPT_ML)/smoke
	$(if $(strip $(OPT_ML)),,$(error OPT_ML is empty: refusing to clear /smoke))
	rm -rf -- "$(OPT_ML)/smoke"
	$(PY) -m grpo_rlvr.cli prepare --source $(DATA_SOURCE) --out "$(OPT_ML)/smoke/input/data"
	$(PY) scripts/local_opt_ml.py --opt-ml "$(OPT_ML)/smoke" --recipe smoke-cpu --instance-type local
	SAGEMAKER_BASE_DIR="$(OPT_ML)/smoke" $(PY) -m grpo_rlvr.cli launch
	@echo "smoke: model and run_summary.json in $(OPT_ML)/smoke/model, checkpoints in $(OPT_ML)/smoke/checkpoints"

reproduce-mini: ## CPU miniature reproduction: warm-up, GRPO on the GSM8K rewards, held-out base vs trained
	$(PY) -m grpo_rlvr.reproduce --out reproduce-mini

test:
	$(PY) -m pytest

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(BIN)hadolint --failure-threshold error Dockerfile
	$(BIN)shellcheck docker/entrypoint.sh scripts/push_ecr.sh

bench: ## CPU benchmark of the training step
	$(PY) bench/cpu.py

eval: ## evaluate a model, e.g. make eval EVAL_ARGS="--model opt_ml/model ..."
	$(PY) -m grpo_rlvr.cli evaluate $(EVAL_ARGS)

push: ## build tag -> ECR (creates the repository if missing)
	scripts/push_ecr.sh --image $(IMAGE) --repository $(ECR_REPOSITORY) --tag $(TAG)

launch: ## SageMaker training job, e.g. make launch LAUNCH_ARGS="--image-uri ... --dry-run"
	$(PY) scripts/launch_sagemaker.py $(LAUNCH_ARGS)
