"""The one-shot GPU acceptance run that `bench/gpu_check.sh` starts (see that script and docs/benchmarks.md).

On a GPU: Qwen2.5-0.5B's architecture with random bf16 weights (bench/gpu.py's model, built from its
config, no download), bf16 LoRA GRPO through `training.grpo.run` with transformers' generation and the stop
rule; then each check of the GPU path, each with a verdict (`pass`, `fail: why`, `skipped: why`). One
JSON, `gpu_check.json`, into $OUT when set (else the working directory): completion tokens/s,
optimizer-step time, peak GPU memory, the verdicts. With GPU_CHECK_DRY=1 the same runs on the CPU with
the built-in tiny model (the suite runs it so), and the checks that need CUDA say so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from measure import StepTimer, machine_info
from prompts import GSM8K_TRAIN
from transformers import TrainerCallback

from grpo_rlvr import cuda
from grpo_rlvr.config.checks import check_device
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.config.sections import ConfigError
from grpo_rlvr.tiny import resolve_model_path

DRY = os.environ.get("GPU_CHECK_DRY") == "1"
ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
# The measured run: the default recipe's LoRA and GRPO shape, generation with transformers.
RUN = {
    "use_peft": True, "lora_r": 16, "lora_alpha": 16, "lora_target_modules": "all-linear",
    "dataset_path": str(GSM8K_TRAIN), "max_train_samples": 512,
    "rewards": ["gsm8k_format", "gsm8k_correctness"],
    "logging_steps": 1, "save_strategy": "no", "report_to": "none", "merge_adapter": True, "seed": 0,
    "disable_tqdm": True,
}  # fmt: skip
SIZES = {  # (dry run on the CPU, GPU)
    "num_shots": (0, 8),
    "max_steps": (2, 6),
    "per_device_train_batch_size": (4, 16),
    "num_generations": (4, 8),
    "max_completion_length": (8, 256),
    "gradient_checkpointing": (False, True),
}


def recipe(folder: Path, model: str, **values: Any) -> Path:
    """A recipe for this machine: bf16 on the GPU, fp32 on purpose on the CPU, outputs under `folder`."""
    device = (
        {"use_cpu": True, "bf16": False, "dtype": "float32"} if DRY else {"bf16": True, "dtype": "bfloat16"}
    )
    sizes = {key: pair[not DRY] for key, pair in SIZES.items()}
    settings = {
        **RUN, **sizes, **device, "model_name_or_path": model, **values,
        "output_dir": str(folder / "checkpoints"), "model_dir": str(folder / "model"),
        "summary_dir": str(folder / "summary"),
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(settings))
    return folder / "recipe.yaml"


class GenerationSettings(TrainerCallback):
    """The `generation_kwargs` the trainer generated with (its own arguments, at the start of training)."""

    kwargs: dict[str, Any] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.kwargs = args.generation_kwargs


def measured_run(work: Path, model: str) -> dict[str, Any]:
    """bf16 LoRA GRPO through `training.grpo.run`, HF generation ending at the stop rule: speed, memory."""
    from grpo_rlvr.training import grpo

    config = load_config(recipe(work / "run", model))
    timer, used = StepTimer(), GenerationSettings()
    if not DRY:
        torch.cuda.reset_peak_memory_stats()
    summary = grpo.run(config, [timer, used])
    per_step = config.training.per_device_train_batch_size * config.training.gradient_accumulation_steps
    timed = timer.summary(per_step)
    return {
        "global_step": summary["global_step"],
        "completion_tokens_per_s": timed["completion_tokens_per_s"],
        "optimizer_step_s": timed["median_step_s"],
        "first_step_s": timed["first_step_s"],
        "mean_completion_length": timed["mean_completion_length"],
        "peak_gpu_memory_gib": None if DRY else torch.cuda.max_memory_allocated() / GIB,
        "stop_strings": (used.kwargs or {}).get("stop_strings"),
    }


def check_no_silent_cpu(_: Path) -> str:
    """Item 1: the probe finds a usable GPU here (dry: finds none, and a GPU recipe is refused)."""
    status = cuda.probe()
    config = load_config("qwen2.5-0.5b-gsm8k")
    if DRY:
        try:
            check_device(config, status)
        except ConfigError as err:
            return "pass" if err.key == "use_cpu" else f"fail: {err}"
        return "fail: a GPU recipe was not refused on a host without usable CUDA"
    if status.problem is not None:
        return f"fail: {status.problem}"
    check_device(config, status)
    return f"pass (driver {status.driver}, CUDA {status.torch_cuda}, {status.gpus} GPU(s))"


def check_quantized_vllm_refused(_: Path) -> str:
    """Item 2: 4-bit with vLLM generation is refused before load."""
    try:
        load_config("qwen2.5-0.5b-gsm8k", {"load_in_4bit": True})
    except ConfigError as err:
        return "pass" if err.key == "load_in_4bit" and "use_vllm" in str(err) else f"fail: {err}"
    return "fail: load_in_4bit with use_vllm was accepted"


def check_zero3_qlora(work: Path) -> str:
    """Items 3 and 4: the seed recipe's command shape (accelerate + ZeRO-3, 4-bit LoRA, bf16) trains."""
    if DRY:
        return "skipped: needs CUDA (bitsandbytes 4-bit under ZeRO-3 on the GPU)"
    missing = [m for m in ("deepspeed", "bitsandbytes") if importlib.util.find_spec(m) is None]
    if missing:
        return f"skipped: {', '.join(missing)} not installed here (run inside the image for this check)"
    small = resolve_model_path("builtin:tiny-qwen2")
    path = recipe(
        work / "zero3", small, load_in_4bit=True, use_bnb_nested_quant=True, max_steps=2, num_shots=0
    )
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ROOT / "recipes" / "accelerate" / "zero3.yaml"), "--num_processes", "1",
        "-m", "grpo_rlvr.cli", "train", "--recipe", str(path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    if done.returncode != 0:
        return f"fail: exit {done.returncode}: {done.stderr.strip().splitlines()[-1:] or done.stdout[-300:]}"
    return "pass" if (work / "zero3" / "model" / "run_summary.json").is_file() else "fail: no model written"


def check_tied_head(work: Path) -> str:
    """Item 5: a tied model's head trained apart reads the same in transformers and by its config."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from grpo_rlvr.training import grpo

    small = resolve_model_path("builtin:tiny-qwen2")
    reward = work / "varied.py"  # rewards that differ inside a group, so the head gets a gradient
    reward.write_text(
        "def varied(completions, **kwargs):\n    return [len(set(c)) / (len(c) + 1) for c in completions]\n"
    )
    path = recipe(
        work / "tied", small, lora_modules_to_save=["lm_head", "embed_tokens"], num_shots=0, max_steps=1,
        learning_rate=1e-2, dtype="float32", reward_module=str(reward), rewards=["varied"],
    )  # fmt: skip
    grpo.run(load_config(path))
    model_dir = work / "tied" / "model"
    weights = load_file(model_dir / "model.safetensors")
    head, embeddings = weights["lm_head.weight"], weights["model.embed_tokens.weight"]
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    if torch.equal(head, embeddings) or model.config.tie_word_embeddings:
        return "fail: the trained head and embeddings were saved tied"
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        same = torch.allclose(model(ids).logits, model.model(ids).last_hidden_state @ head.T, atol=1e-5)
    return "pass" if same else "fail: transformers' logits are not the saved head's"


def check_bench_rows(_: Path) -> str:
    """Item 6: bench/gpu.py's rows keep every forced token in the loss (its --dry-run, no GPU needed)."""
    import gpu

    done = subprocess.run(
        [sys.executable, gpu.__file__, "--dry-run", "--steps", "2", "--modes", "lora,qlora"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return f"fail: exit {done.returncode}: {done.stderr[-300:]}"
    rows = json.loads(done.stdout)
    measured = [r for r in rows if "skipped" not in r]
    if any(r["settings"]["mask_truncated_completions"] for r in measured):
        return "fail: a row masks the completions it forces to full length"
    return f"pass ({len(measured)} rows measured, {len(rows) - len(measured)} stated as skipped)"


CHECKS: dict[str, Callable[[Path], str]] = {
    "1_no_silent_cpu": check_no_silent_cpu,
    "2_quantized_vllm_refused": check_quantized_vllm_refused,
    "3_4_zero3_qlora": check_zero3_qlora,
    "5_tied_head_one_reading": check_tied_head,
    "6_bench_rows_measure_what_they_name": check_bench_rows,
}


def main() -> int:
    started = time.monotonic()
    if not DRY and not torch.cuda.is_available():
        print(
            f"gpu_check: no usable GPU ({cuda.probe().problem}); GPU_CHECK_DRY=1 runs on the CPU",
            file=sys.stderr,
        )
        return 2
    out = Path(os.environ.get("OUT") or ".")
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    if DRY:
        model = resolve_model_path("builtin:tiny-qwen2")
    else:
        import gpu  # bench/gpu.py: Qwen2.5-0.5B's architecture, random bf16 weights, its padded tokenizer

        model = str(gpu.write_model(work / "random-qwen2.5-0.5b"))
    report: dict[str, Any] = {"dry_run": DRY, "model": "builtin:tiny-qwen2" if DRY else "Qwen2.5-0.5B-shaped"}
    try:
        report["run"] = measured_run(work, model)
    except Exception as err:  # the checks still run: each is its own verdict
        report["run"] = {"error": f"{type(err).__name__}: {err}"}
    report["checks"] = {}
    for name, check in CHECKS.items():
        try:
            report["checks"][name] = check(work)
        except Exception as err:
            report["checks"][name] = f"fail: {type(err).__name__}: {err}"
    report["machine"] = machine_info()
    if torch.cuda.is_available():
        report["machine"]["gpu"] = torch.cuda.get_device_name()
    report["wall_s"] = round(time.monotonic() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: report[k] for k in ("run", "checks", "wall_s")}, indent=2, default=str))
    failed = "error" in report["run"] or any(v.startswith("fail") for v in report["checks"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
