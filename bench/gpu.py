"""GPU benchmark: the published recipe (a) against our default (b) on Qwen2.5-0.5B's shape, random weights.

(a) recipes/qwen2.5-0.5b-gsm8k-seed.yaml and (b) recipes/qwen2.5-0.5b-gsm8k.yaml are loaded through
`config.loading.load_config` as they are, with only these overrides: the model (written here), the data, the
step count, output folders, no saving/evaluation/reporting, and a fixed completion length. Each
(recipe, mode) trains in its own process through `training.grpo.run` (so vLLM and the CUDA memory statistics
start clean) and reports optimizer steps/s, completions/s, completion tokens/s (steps after the first)
and peak GPU memory; then the ratios (b)/(a) per mode.

Why a random model is a fair stand-in: speed depends on the architecture, the sequence lengths and the
settings, not on the weight values, except that trained weights stop early. Random weights almost
never sample the end token, so every completion is forced to one length (`min_new_tokens` for
transformers' generate, `min_tokens` for vLLM, = max_completion_length): by default 256 tokens for
both recipes (the seed's cap; GSM8K solutions end inside it), so that (b)/(a) compares engines and
batching at equal work per completion, not (b)'s larger cap; `--completion-length recipe` keeps each
recipe's own cap instead (the worst case). A forced completion reaches the cap, so it counts as
truncated: every row trains with `mask_truncated_completions: false`, or (b), which masks truncated
completions out of the loss, would train on its prompts alone (with flash-attn the masked tokens are
unpadded away) and look faster than it is. A row that would mask what it forces (`--set
mask_truncated_completions=true`) is refused, by `--dry-run` too.

QLoRA with vLLM generation is refused before load (`gpu_rules.vllm_problem`): the (b, qlora) row is
reported as skipped, with the reason, and has no ratio.

Why this tokenizer: a random model samples ids over all 151,936 rows of its output layer, so the
tokenizer must decode every one of them (vLLM detokenizes as it goes). The tiny tokenizer (576 tokens,
Qwen2's text pipeline) is padded to 151,936 with decode-only filler tokens: prompts tokenize exactly as
with the tiny tokenizer (an 8-shot GSM8K prompt is ~800 tokens, a little more than Qwen2.5's own
tokenizer makes of it), and every sampled id decodes.

  python bench/gpu.py --steps 10 --modes full,lora,qlora --out gpu-results.json   # one GPU
  python bench/gpu.py --dry-run                                                   # configs only, any machine
  python bench/gpu.py --set vllm_gpu_memory_utilization=0.5 ...                  # one override on every row
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
from measure import StepTimer, machine_info
from prompts import GSM8K_TRAIN

from grpo_rlvr.config.loading import load_config
from grpo_rlvr.config.sections import ConfigError, RunConfig
from grpo_rlvr.overrides import parse_overrides
from grpo_rlvr.tiny import SPECIAL_TOKENS, resolve_model_path

RECIPES = {"a": "qwen2.5-0.5b-gsm8k-seed", "b": "qwen2.5-0.5b-gsm8k"}
MODES: dict[str, dict[str, bool]] = {
    "full": {"use_peft": False, "load_in_4bit": False},
    "lora": {"use_peft": True, "load_in_4bit": False},
    "qlora": {"use_peft": True, "load_in_4bit": True},
}
# Qwen/Qwen2.5-0.5B's public config.json.
QWEN2_5_0_5B: dict[str, Any] = {
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "intermediate_size": 4864,
    "vocab_size": 151_936,
    "tie_word_embeddings": True,
    "rope_theta": 1_000_000.0,
    "max_position_embeddings": 32_768,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
}
SPEED_SETTINGS = {
    "training": ("use_vllm", "vllm_mode", "vllm_gpu_memory_utilization", "vllm_enable_sleep_mode",
                 "num_generations", "max_completion_length", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "steps_per_generation", "num_iterations", "beta", "loss_type",
                 "mask_truncated_completions", "gradient_checkpointing", "bf16", "torch_compile",
                 "generation_kwargs"),
    "model": ("use_peft", "load_in_4bit", "lora_r", "lora_target_modules", "dtype", "attn_implementation"),
    "data": ("num_shots", "prompt_format", "end_tokens", "stop_at_answer", "max_prompt_tokens"),
}  # fmt: skip
GIB = 2**30
# Qwen2.5's chat format for plain conversations (its default system turn included, for prompt length).
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(vocab_size: int = QWEN2_5_0_5B["vocab_size"]) -> Any:
    """The tiny tokenizer's vocabulary and merges, padded with decode-only tokens to `vocab_size` ids."""
    from transformers import Qwen2Tokenizer

    tiny = json.loads((Path(resolve_model_path("builtin:tiny-qwen2")) / "tokenizer.json").read_text())
    vocab = dict(tiny["model"]["vocab"])
    vocab |= {f"<|filler{i}|>": i for i in range(len(vocab), vocab_size)}  # no merge produces these
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tiny["model"]["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.chat_template = CHAT_TEMPLATE  # the seed recipe (a) writes chat prompts
    return tokenizer


def write_model(out_dir: Path, weights: bool = True) -> Path:
    """Qwen2.5-0.5B's architecture with seeded random bf16 weights and the padded tokenizer.

    Built on the CPU: this (parent) process never touches the GPU, so its CUDA context and cached
    blocks are in no run's memory figures. Without `weights` only config.json is written: enough for
    `load_config` (dry runs).
    """
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eos = 0  # <|endoftext|>: the tiny vocabulary's first token
    config = Qwen2Config(
        **QWEN2_5_0_5B, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, dtype="bfloat16"
    )
    if not weights:
        config.save_pretrained(out_dir)
        return out_dir
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=eos, bos_token_id=eos)
    model.save_pretrained(out_dir)
    build_tokenizer().save_pretrained(out_dir)
    return out_dir


class MasksForcedTokens(ValueError):
    """A row whose completions are forced to full length while truncated completions leave the loss."""


def run_config(
    recipe: str,
    mode: str,
    model_dir: Path,
    data: Path,
    steps: int,
    workdir: Path,
    length: int | None,
    extra: dict[str, Any] | None = None,
) -> RunConfig:
    """The recipe as published, on the random model, for `steps` steps, every completion `length` tokens
    long (None: the recipe's max_completion_length), truncated completions kept in the loss; `extra`
    overrides last (`--set`)."""
    overrides: dict[str, Any] = {
        "model_name_or_path": str(model_dir),
        **MODES[mode],
        "dataset_path": str(data),
        "val_dataset_path": None,
        "val_fraction": 0.0,
        "max_train_samples": 2048,
        "max_steps": steps,
        "logging_steps": 1,  # StepTimer reads every step's metrics
        "eval_strategy": "no",
        "save_strategy": "no",
        "report_to": "none",
        "merge_adapter": False,
        "output_dir": str(workdir / "checkpoints"),
        "model_dir": str(workdir / "model"),
        "summary_dir": str(workdir / "summary"),
        **({"max_completion_length": length} if length else {}),
        "mask_truncated_completions": False,  # every completion is forced to the cap: see the docstring
        **(extra or {}),
    }
    recipe_only = load_config(recipe, overrides)
    fixed_length = "min_tokens" if recipe_only.training.use_vllm else "min_new_tokens"
    generation = {
        **(recipe_only.training.generation_kwargs or {}),
        fixed_length: recipe_only.training.max_completion_length,
    }
    config = load_config(recipe, {**overrides, "generation_kwargs": generation})
    if config.training.mask_truncated_completions:
        raise MasksForcedTokens(
            f"{recipe} / {mode}: completions are forced to {config.training.max_completion_length} tokens "
            "(truncated), and mask_truncated_completions: true would leave every one out of the loss"
        )
    return config


def completions_per_step(config: RunConfig) -> int:
    """Completions one optimizer step trains on (one process)."""
    return config.training.per_device_train_batch_size * config.training.gradient_accumulation_steps


def plan(recipe_key: str, mode: str, config: RunConfig) -> dict[str, Any]:
    """A run's name and the settings that move a GRPO step's speed, as this run has them."""
    return {
        "recipe": RECIPES[recipe_key],
        "mode": mode,
        "settings": {
            key: getattr(getattr(config, part), key) for part, keys in SPEED_SETTINGS.items() for key in keys
        },
        "completions_per_step": completions_per_step(config),
    }


class DevicePeak:
    """Peak device-wide memory in use, polled: unlike torch's allocator statistics it counts vLLM's pool
    when vLLM allocates outside torch (sleep mode) and the CUDA context.

    The polling thread asks NVML (the driver's management library, as nvidia-smi does), never CUDA: a
    CUDA call from a second thread while vLLM captures CUDA graphs can invalidate the capture.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        import pynvml  # nvidia-ml-py, in the image's lock

        self.interval_s = interval_s
        self.peak = 0
        self._nvml = pynvml
        uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
        pynvml.nvmlInit()
        self._handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used)

    def __enter__(self) -> DevicePeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._nvml.nvmlShutdown()


def row_config(
    recipe_key: str, mode: str, args: argparse.Namespace, model_dir: Path, workdir: Path
) -> RunConfig:
    return run_config(
        RECIPES[recipe_key], mode, model_dir, args.data, args.steps, workdir, args.completion_length, args.set
    )


def skipped(recipe_key: str, mode: str, args: argparse.Namespace, model_dir: Path) -> dict[str, Any] | None:
    """A row the stack refuses before load (quantization with vLLM): its reason, else None."""
    try:
        row_config(recipe_key, mode, args, model_dir, model_dir.parent / f"{recipe_key}-{mode}")
    except ConfigError as err:
        if err.key in ("load_in_4bit", "load_in_8bit"):
            return {"recipe": RECIPES[recipe_key], "mode": mode, "skipped": str(err)}
        raise
    return None


def measure(recipe_key: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one (recipe, mode) and time it; meant for a fresh process."""
    from grpo_rlvr.training import grpo

    config = row_config(recipe_key, mode, args, args.model_dir, args.workdir)
    timer = StepTimer()
    before = torch.cuda.mem_get_info()
    with DevicePeak() as device:
        grpo.run(config, callbacks=[timer])
    return {
        **plan(recipe_key, mode, config),
        **timer.summary(completions_per_step(config)),
        "torch_peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
        "torch_peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB,
        "device_peak_used_gib": device.peak / GIB,
        "device_used_before_gib": (before[1] - before[0]) / GIB,
        "gpu": torch.cuda.get_device_name(),
        "gpu_total_gib": before[1] / GIB,
    }


def run_child(recipe_key: str, mode: str, args: argparse.Namespace, model_dir: Path, workdir: Path) -> dict:
    """`measure` in a child process; its output goes to a log file, its error (if any) into the result."""
    run_dir = workdir / f"{recipe_key}-{mode}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result_file, log_file = run_dir / "result.json", run_dir / "train.log"
    command = [sys.executable, __file__, "--child", recipe_key, mode, "--model-dir", str(model_dir),
               "--data", str(args.data), "--steps", str(args.steps), "--workdir", str(run_dir),
               "--completion-length", str(args.completion_length or "recipe"),
               *(f"--set={k}={json.dumps(v)}" for k, v in args.set.items())]  # fmt: skip
    print(f"[gpu bench] {RECIPES[recipe_key]} / {mode}: log {log_file}", file=sys.stderr, flush=True)
    with log_file.open("w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if code == 0:
        return json.loads(result_file.read_text())
    tail = log_file.read_text(errors="replace").splitlines()[-25:]
    print("\n".join(tail), file=sys.stderr)
    return {"recipe": RECIPES[recipe_key], "mode": mode, "error": f"exit {code}", "log_tail": tail}


def ratios(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """(b)/(a) per mode for every rate and for peak memory."""
    found = {(r["recipe"], r["mode"]): r for r in runs if "error" not in r and "skipped" not in r}
    keys = ("steps_per_s", "completions_per_s", "completion_tokens_per_s", "device_peak_used_gib")
    return {
        mode: {key: b[key] / a[key] for key in keys if a.get(key) and b.get(key) is not None}
        for mode in MODES
        if (a := found.get((RECIPES["a"], mode))) and (b := found.get((RECIPES["b"], mode)))
    }


def print_table(runs: list[dict[str, Any]], by_mode: dict[str, dict[str, float]]) -> None:
    print(f"{'recipe':<26} {'mode':<6} {'steps/s':>8} {'compl/s':>8} {'tok/s':>9} {'1st step s':>10} "
          f"{'torch GiB':>9} {'device GiB':>10}")  # fmt: skip
    for r in runs:
        if "error" in r or "skipped" in r:
            print(
                f"{r['recipe']:<26} {r['mode']:<6} "
                + (f"failed: {r['error']}" if "error" in r else "skipped")
            )
            continue
        print(f"{r['recipe']:<26} {r['mode']:<6} {r['steps_per_s']:>8.3f} {r['completions_per_s']:>8.1f} "
              f"{r['completion_tokens_per_s'] or 0:>9.0f} {r['first_step_s']:>10.1f} "
              f"{r['torch_peak_reserved_gib']:>9.1f} {r['device_peak_used_gib']:>10.1f}")  # fmt: skip
    for mode, values in by_mode.items():
        print(f"(b)/(a) {mode}: " + ", ".join(f"{k} {v:.2f}x" for k, v in values.items()))


def dry_run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (recipe, mode) config as the real run would build it, on a config-only model: no GPU."""
    plans = []
    with tempfile.TemporaryDirectory(prefix="bench-gpu-dry-") as tmp:
        model_dir = write_model(Path(tmp) / "model", weights=False)
        for key in RECIPES:
            for mode in args.modes:
                if refused := skipped(key, mode, args, model_dir):
                    plans.append(refused)
                    continue
                plans.append(
                    plan(key, mode, row_config(key, mode, args, model_dir, Path(tmp) / f"{key}-{mode}"))
                )
    return plans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=10, help="optimizer steps per run; the first is not timed"
    )
    parser.add_argument("--modes", type=lambda s: s.split(","), default=list(MODES), help="full,lora,qlora")
    parser.add_argument("--data", type=Path, default=GSM8K_TRAIN, help="GSM8K train JSONL")
    parser.add_argument(
        "--completion-length",
        type=lambda s: None if s == "recipe" else int(s),
        default=256,
        help="tokens in every completion, both recipes (default 256), or `recipe`: each recipe's own cap",
    )
    parser.add_argument("--out", type=Path, default=Path("gpu-results.json"), help="results JSON")
    parser.add_argument("--workdir", type=Path, help="model, logs and outputs (default: a temporary folder)")
    parser.add_argument("--dry-run", action="store_true", help="print every run's config; needs no GPU")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe override on every row"
    )
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, metavar=("RECIPE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if unknown := set(args.modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}; choose from {','.join(MODES)}")
    if args.steps < 2:
        parser.error("--steps must be at least 2: the first step is not timed")
    if not args.data.is_file():
        parser.error(f"--data {args.data} does not exist: pass the GSM8K train JSONL")

    args.set = parse_overrides(args.set)
    if args.child:
        result = measure(*args.child, args)
        (args.workdir / "result.json").write_text(json.dumps(result, indent=2, default=str))
        return 0
    try:
        plans = dry_run(args)  # every row's config, checked before any GPU time is spent
    except MasksForcedTokens as err:
        parser.error(str(err))
    if args.dry_run:
        print(json.dumps(plans, indent=2, default=str))
        return 0
    if not torch.cuda.is_available():
        parser.error("no CUDA device: run this inside the image on a GPU machine (or use --dry-run)")

    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        workdir = args.workdir or Path(tmp)
        model_dir = write_model(workdir / "random-qwen2.5-0.5b")
        runs = [
            skipped(key, mode, args, model_dir) or run_child(key, mode, args, model_dir, workdir)
            for mode in args.modes
            for key in RECIPES
        ]
    by_mode = ratios(runs)
    report = {"machine": machine_info(), "steps": args.steps, "runs": runs, "ratio_b_over_a": by_mode}
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print_table(runs, by_mode)
    print(f"results: {args.out}")
    return 0 if all("error" not in r for r in runs) else 1  # a skipped row is stated, not failed


if __name__ == "__main__":
    sys.exit(main())
