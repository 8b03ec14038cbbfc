#!/usr/bin/env bash
# One-shot GPU acceptance run: on a GPU machine with PyTorch (CUDA 13), transformers, peft, accelerate,
# pyarrow and pandas, no network needed. From a copy of the repository that holds `make gpu-check`'s
# wheelhouse (build/gpu-check/wheels), it installs what is missing from there (TRL, datasets,
# matplotlib, this package), then runs bench/gpu_check.py: bf16 LoRA GRPO on a Qwen2.5-0.5B-shaped
# random model through training.grpo.run, then each check of the GPU path, into $OUT/gpu_check.json.
#   bench/gpu_check.sh                  # on the GPU machine (about 5 minutes on an H100)
#   GPU_CHECK_DRY=1 bench/gpu_check.sh  # the same on the CPU with the tiny model (the test suite runs it)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
wheels="$root/build/gpu-check/wheels"
python="${PYTHON:-python3}"

if ! "$python" -c "import trl, datasets, matplotlib, grpo_rlvr" 2>/dev/null; then
    if ! compgen -G "$wheels/grpo_rlvr-*.whl" >/dev/null; then
        echo "gpu_check: TRL, datasets or grpo_rlvr missing and no wheelhouse in $wheels: run 'make gpu-check' first" >&2
        exit 2
    fi
    "$python" -m pip install --quiet --no-index --no-deps "$wheels"/grpo_rlvr-*.whl
    "$python" -m pip install --quiet --no-index --find-links "$wheels" trl datasets matplotlib
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$python" "$here/gpu_check.py"
