"""A miniature reproduction, on a CPU: GRPO on the real GSM8K rewards makes a model better.

1. Data: synthetic GSM8K-style word problems (`grpo_rlvr.synthetic`): warm-up, training and held-out
   test questions, no question in two of them.
2. Base model: `builtin:mini-qwen2` (random weights) taught by a short supervised warm-up (TRL's
   `SFTTrainer`, loss on the completion only) to answer the prompts GRPO and evaluation build, in the
   training answer format. Half of the warm-up solutions end in a careless slip (the answer line
   repeats a number of the last step, not its result), as text written in a hurry does: the base model
   learns the arithmetic and the slip, so its accuracy is well above 0 and well below 100%. Like a
   pretrained model, it goes on after its answer with an invented next `Question:`.
3. GRPO with `gsm8k_format` + `gsm8k_correctness` through `training.grpo.run` (recipe `mini-grpo-cpu`). Only
   the correctness reward tells a slip from the result, so only a working loop (rewards, advantages,
   update) unlearns it.
4. `grpo-rlvr evaluate --compare` base vs trained on the held-out questions (no slips there, gold
   answers only): accuracies with 95% Wilson intervals and the exact McNemar test on the paired
   per-question results.

The run passes when the trained model beats the base at p < `P_MAX`; it writes `results.md`,
`metrics.json` and `training.png` into the output folder (the evaluation's own files in `eval/`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from grpo_rlvr import synthetic
from grpo_rlvr.data import build_prompt, load_examples, worked_example
from grpo_rlvr.help_format import HelpFormatter

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

BUILTIN = "builtin:mini-qwen2"
RECIPE = "mini-grpo-cpu"
REWARDS = ("gsm8k_format", "gsm8k_correctness")
P_MAX = 0.01  # the trained model must beat the base at this paired-test level


@dataclass(frozen=True)
class Size:
    """How big a run is: problems per split, and GRPO steps (None: the recipe's own)."""

    splits: dict[str, int]
    grpo_steps: int | None


# `full` is the reproduction; `small` a quick look in about half the time, with the same warm-up.
SIZES = {
    "full": Size({"warmup": 4000, "train": 2000, "test": 500}, None),
    "small": Size({"warmup": 4000, "train": 1000, "test": 200}, 60),
}
PHASES = ("data", "warm-up of the base model (supervised)", "GRPO on the GSM8K rewards", "evaluation")
TOP = 10  # operands of additions and subtractions stay at most this
WARMUP_SLIP = 0.5  # share of warm-up solutions whose answer line is a careless slip
WARMUP_STEPS, WARMUP_LR, WARMUP_BATCH = 2000, 3e-3, 16
EVAL_MAX_NEW_TOKENS = 64
NO_STOP_STEPS = 8  # GRPO steps run again without the stop rule, to measure what it saves
RESULTS, METRICS, PLOT = "results.md", "metrics.json", "training.png"


def warmup_pairs(rows: list[dict[str, str]], seed: int) -> list[dict[str, str]]:
    """Rows -> `{"prompt", "completion"}` pairs: the prompt exactly as GRPO and evaluation build it; the
    completion its worked solution, then the next problem's prompt, as pretraining text goes on (what the
    stop rule cuts)."""
    order = list(rows)
    random.Random(seed).shuffle(order)
    pairs = []
    for row, following in zip(order, order[1:] + order[:1], strict=True):
        prompt = build_prompt(row["question"], 0)
        text = worked_example(row["question"], row["answer"]) + build_prompt(following["question"], 0)
        pairs.append({"prompt": prompt, "completion": text.removeprefix(prompt)})
    return pairs


def warm_up(
    model: str,
    rows: list[dict[str, Any]],
    out_dir: Path,
    *,
    steps: int,
    learning_rate: float,
    seed: int,
    pairs: Callable[[list[dict[str, Any]], int], list[dict[str, str]]] = warmup_pairs,
) -> dict[str, Any]:
    """Supervised warm-up of `model` on `rows` (made prompt/completion `pairs`) with TRL's SFTTrainer;
    the model is saved to `out_dir`."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from grpo_rlvr.tiny import resolve_model_path

    path = resolve_model_path(model)
    args = SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        max_steps=steps,
        per_device_train_batch_size=WARMUP_BATCH,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 20),
        weight_decay=0.0,
        logging_steps=max(1, steps // 10),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=seed,
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=args,
        train_dataset=Dataset.from_list(pairs(rows, seed)),
        processing_class=AutoTokenizer.from_pretrained(path),
    )
    result = trainer.train()
    trainer.save_model(str(out_dir))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {"steps": result.global_step, "loss_first": losses[0], "loss_final": losses[-1]}


class StepLog(TrainerCallback):
    """Every training log entry, with its step and the seconds since training began."""

    def __init__(self) -> None:
        self.logs: list[dict[str, float]] = []
        self.start = time.perf_counter()

    def on_train_begin(self, *_: Any, **__: Any) -> None:
        self.start = time.perf_counter()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **_: Any) -> None:
        elapsed = round(time.perf_counter() - self.start, 2)
        self.logs.append({**(logs or {}), "step": state.global_step, "elapsed_s": elapsed})

    def series(self, key: str) -> list[float]:
        return [entry[key] for entry in self.logs if key in entry]


def grpo(
    base: Path, train_data: Path, out_dir: Path, recipe: str = RECIPE, **overrides: Any
) -> tuple[dict[str, Any], StepLog]:
    """GRPO through `training.grpo.run` from `recipe` (the GSM8K rewards' by default); summary and step
    log."""
    from grpo_rlvr.config.loading import load_config
    from grpo_rlvr.training.grpo import run

    paths = {
        "model_name_or_path": str(base),
        "dataset_path": str(train_data),
        "output_dir": str(out_dir / "checkpoints"),
        "model_dir": str(out_dir / "model"),
        "summary_dir": str(out_dir / "summary"),
    }
    steps = StepLog()
    summary = run(load_config(recipe, {**paths, **overrides}), [steps])
    return summary, steps


def reward_curve(steps: StepLog, name: str) -> tuple[list[float], list[float]]:
    """(steps, mean) of one reward as TRL logs it (`rewards/<name>/mean`)."""
    key = f"rewards/{name}/mean"
    return [e["step"] for e in steps.logs if key in e], steps.series(key)


def generation_cost(steps: StepLog, batch: int, first: int | None = None) -> dict[str, float]:
    """Completion tokens per step, clipped share and seconds per step, over the first `first` steps."""
    logged = [e for e in steps.logs if "completions/mean_length" in e][:first]
    return {
        "steps": len(logged),
        "completion_tokens_per_step": round(batch * mean(e["completions/mean_length"] for e in logged), 1),
        "clipped_ratio": round(mean(e["completions/clipped_ratio"] for e in logged), 4),
        "seconds_per_step": round(logged[-1]["elapsed_s"] / len(logged), 2),
    }


def compare(
    base: Path,
    trained: Path,
    test_data: Path,
    out_dir: Path,
    task: str = "gsm8k",
    max_new_tokens: int = EVAL_MAX_NEW_TOKENS,
) -> dict[str, Any]:
    """`grpo-rlvr evaluate --task TASK --compare BASE TRAINED` on the held-out rows; its metrics.json."""
    from grpo_rlvr.cli import main as cli

    argv = ["evaluate", "--task", task, "--compare", str(base), str(trained), "--data", str(test_data)]
    argv += ["--shots", "0", "--max-new-tokens", str(max_new_tokens), "--batch-size", "64"]
    argv += ["--out", str(out_dir)]
    if cli(argv) != 0:
        raise RuntimeError(f"grpo-rlvr {' '.join(argv)} failed")
    return json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))


def plot(
    curves: dict[str, tuple[list[float], list[float]]],
    results: list[dict[str, Any]],
    path: Path,
    ylabel: str = "mean reward of the step's completions",
) -> Figure:
    """Left: `curves` (label -> GRPO steps, values). Right: base vs trained held-out accuracy, 95% Wilson
    intervals."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    for label, (x, y) in curves.items():
        left.plot(x, y, label=label)
    left.set_xlabel("GRPO step")
    left.set_ylabel(ylabel)
    left.legend(fontsize="small")
    left.grid(alpha=0.3)
    acc = [100 * r["accuracy"] for r in results]
    errors = [
        [a - 100 * r["ci95"][0] for a, r in zip(acc, results, strict=True)],
        [100 * r["ci95"][1] - a for a, r in zip(acc, results, strict=True)],
    ]
    right.bar(["base", "trained"], acc, yerr=errors, capsize=6, color=["#1f77b4", "#d62728"])
    right.set_ylabel(f"held-out accuracy (%), n = {results[0]['n']}, 95% Wilson")
    right.grid(alpha=0.3, axis="y")
    fig.savefig(path)
    return fig


def render(metrics: dict[str, Any]) -> str:
    """results.md: what was run, the comparison with n, intervals and the paired test, the stop rule."""
    base, trained = metrics["evaluation"]["base"], metrics["evaluation"]["trained"]
    paired, stop = metrics["evaluation"]["paired"], metrics["stop_rule"]

    def row(name: str, r: dict[str, Any]) -> str:
        lo, hi = (100 * x for x in r["ci95"])
        return f"| {name} | {100 * r['accuracy']:.1f}% | {r['correct']} / {r['n']} | [{lo:.1f}%, {hi:.1f}%] |"

    def cost(name: str, c: dict[str, Any]) -> str:
        return (
            f"| {name} | {c['completion_tokens_per_step']:.0f} | {c['clipped_ratio']:.2f} | "
            f"{c['seconds_per_step']:.2f} |"
        )

    warm, rl = metrics["warmup"], metrics["grpo"]
    lines = [
        "# Miniature reproduction: GRPO on the GSM8K rewards",
        "",
        f"`{BUILTIN}` ({metrics['model_parameters']:,} parameters), warmed up for {warm['steps']} supervised "
        f"steps (loss {warm['loss_first']:.2f} -> {warm['loss_final']:.2f}), then {rl['global_step']} GRPO "
        f"steps (recipe `{RECIPE}`, rewards gsm8k_format + gsm8k_correctness), evaluated greedily on "
        f"{base['n']} held-out synthetic problems (seed {metrics['seed']}).",
        "",
        "| model | accuracy | correct / n | 95% interval (Wilson) |",
        "|---|---:|---:|---|",
        row("base (warm-up only)", base),
        row("trained (warm-up + GRPO)", trained),
        "",
        f"Paired exact McNemar test on the {base['n']} questions: {paired['trained_only_correct']} right "
        f"only after GRPO, {paired['base_only_correct']} right only before; p = {paired['mcnemar_p']:.2g} "
        f"({'passes' if metrics['passed'] else 'FAILS'} p < {P_MAX} with trained > base).",
        "",
        f"## The stop rule (first {stop['with']['steps']} GRPO steps, {stop['batch']} completions each)",
        "",
        "| training generation | completion tokens per step | completions/clipped_ratio | seconds per step |",
        "|---|---:|---:|---:|",
        cost("stop at the answer (stop_at_answer: true)", stop["with"]),
        cost("no stop rule (stop_at_answer: false)", stop["without"]),
        "",
        f"Wall time: {metrics['wall_time_s']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def phase(number: int, phases: Sequence[str] = PHASES, name: str = "reproduce-mini") -> None:
    """One line as each phase starts, so a reader knows where a run of minutes is."""
    print(f"== {name} {number}/{len(phases)}: {phases[number - 1]}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grpo_rlvr.reproduce",
        description=__doc__.split("\n")[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("reproduce-mini"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="data, warm-up and GRPO seed")
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="full",
        help="small: fewer problems and GRPO steps, a quick look",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started, out, size = time.time(), args.out, SIZES[args.size]
    steps_override = {"max_steps": size.grpo_steps} if size.grpo_steps else {}

    phase(1)
    data = synthetic.write_splits(out / "data", size.splits, args.seed, TOP, {"warmup": WARMUP_SLIP})
    warmup_rows, _ = load_examples(data["warmup"])

    phase(2)  # the random built-in after a supervised warm-up
    base = out / "base"
    warm = warm_up(BUILTIN, warmup_rows, base, steps=WARMUP_STEPS, learning_rate=WARMUP_LR, seed=args.seed)

    phase(3)  # with the stop rule (the recipe's default), then a few steps without it, for the comparison
    shown = {"disable_tqdm": False}  # the recipe keeps test logs short; here a progress bar helps
    summary, steps = grpo(base, data["train"], out / "grpo", seed=args.seed, **shown, **steps_override)
    _, no_stop = grpo(
        base,
        data["train"],
        out / "grpo-no-stop",
        seed=args.seed,
        stop_at_answer=False,
        max_steps=NO_STOP_STEPS,
        **shown,
    )
    batch = summary["config"]["training"]["per_device_train_batch_size"]

    phase(4)  # held-out comparison, base vs trained
    evaluation = compare(base, Path(summary["model_dir"]), data["test"], out / "eval")
    base_result, trained_result = evaluation["results"]
    (paired,) = evaluation["comparison"]["by_shots"]
    passed = paired["trained"] > paired["base"] and paired["mcnemar_p"] < P_MAX

    from transformers import AutoConfig

    metrics = {
        "seed": args.seed,
        "size": args.size,
        "sizes": size.splits,
        "model_parameters": parameters(base),
        "model_config": AutoConfig.from_pretrained(base).to_diff_dict(),
        "warmup": warm,
        "grpo": {k: summary[k] for k in ("global_step", "rewards", "wall_time_s")},
        "grpo_log": steps.logs,
        "evaluation": {"base": base_result, "trained": trained_result, "paired": paired, "dir": "eval"},
        "stop_rule": {
            "batch": batch,
            "with": generation_cost(steps, batch, NO_STOP_STEPS),
            "without": generation_cost(no_stop, batch),
        },
        "passed": passed,
        "wall_time_s": round(time.time() - started, 1),
    }
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out / RESULTS).write_text(render(metrics), encoding="utf-8")
    plot({n: reward_curve(steps, n) for n in REWARDS}, [base_result, trained_result], out / PLOT)
    print((out / RESULTS).read_text(encoding="utf-8"))
    if not passed:
        print(f"reproduce-mini: the trained model does not beat the base at p < {P_MAX}", file=sys.stderr)
        return 1
    return 0


def parameters(model_dir: Path) -> int:
    """Parameters stored in the model folder (a tied head is stored once)."""
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118


if __name__ == "__main__":
    sys.exit(main())
