"""A miniature code reproduction, on a CPU: GRPO on the sandboxed `code_exec` reward makes a
model write more functions that pass their tests.

1. Data: synthetic HumanEval-shaped problems (`grpo_rlvr.synthetic_code`, never HumanEval): warm-up,
   training and held-out test problems, no prompt in two of them.
2. Base model: `builtin:code-qwen2` (random weights) taught by a short supervised warm-up (TRL's
   `SFTTrainer`, `reproduce.warm_up`) to write the body after a function's signature and docstring.
   Half of the warm-up bodies are a slip (`return 7` for "Return x plus 7.") that runs but fails the
   tests: the base model learns the right bodies and the slip, so it passes well above 0% and well
   below 100%.
3. GRPO with `code_exec` (`complete_prompt: true`: program = prompt + completion, cut where the body
   ends) through `training.grpo.run` (recipe `mini-code-grpo-cpu`). The slip earns the partial score,
   the right body the full one: only a working loop (sandbox, rewards, advantages, update) unlearns
   the slip.
4. `grpo-rlvr evaluate --task humaneval --compare` base vs trained on the held-out problems (right
   bodies only, greedy): pass@1 with 95% Wilson intervals and the exact McNemar test.

The run passes when the trained model beats the base at p < `reproduce.P_MAX`. It writes `results.md`,
`metrics.json` (with the share of completions that scored partial and full at every GRPO step, and the
sandbox's programs per second) and `training.png` into the output folder, the evaluation's own files
in `eval/`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grpo_rlvr import humaneval, reproduce, synthetic_code
from grpo_rlvr.help_format import HelpFormatter
from grpo_rlvr.rewards.code_exec import PARTIAL_REWARD

BUILTIN = "builtin:code-qwen2"
RECIPE = "mini-code-grpo-cpu"
SMALL_GRPO_STEPS = 200
# Problems per split (of 3,200 distinct prompts) and GRPO steps (None: the recipe's own). `small` is a
# quick look and the suite's version: the same warm-up, fewer GRPO steps and held-out problems.
SIZES = {
    "full": reproduce.Size({"warmup": 2000, "train": 600, "test": 300}, None),
    "small": reproduce.Size({"warmup": 2000, "train": 600, "test": 200}, SMALL_GRPO_STEPS),
}
PHASES = ("data", "warm-up of the base model (supervised)", "GRPO on the code_exec reward", "evaluation")
WARMUP_WRONG = 0.5  # share of warm-up bodies that are the slip
WARMUP_STEPS, WARMUP_LR = 400, 3e-3
EVAL_MAX_NEW_TOKENS = 24
RESULTS, METRICS, PLOT = "results.md", "metrics.json", "training.png"


def warmup_pairs(rows: list[dict[str, Any]], seed: int) -> list[dict[str, str]]:
    """Rows -> `{"prompt", "completion"}` pairs in a seeded order: the prompt as GRPO and evaluation give
    it, the completion its body (SFTTrainer ends it with EOS, where generation then stops)."""
    order = list(rows)
    random.Random(seed).shuffle(order)
    return [{"prompt": row["prompt"], "completion": row["canonical_solution"]} for row in order]


def score_shares(steps: reproduce.StepLog, batch: int, partial: float = PARTIAL_REWARD) -> list[dict]:
    """Per GRPO step, the share of completions that scored `partial` (ran, a test failed) and 1.0 (every
    test passed). TRL logs each reward's mean and (Bessel-corrected) standard deviation over the step's
    `batch` completions; as code_exec scores take only the values 0, `partial` and 1, those two fix how
    many took each: mean = partial*p + f and mean of squares = partial^2*p + f."""
    shares = []
    for entry in steps.logs:
        if "rewards/code_exec/mean" not in entry:
            continue
        mean, std = entry["rewards/code_exec/mean"], entry["rewards/code_exec/std"]
        squares = std**2 * (batch - 1) / batch + mean**2
        p = (mean - squares) / (partial * (1 - partial))
        shares.append({"step": entry["step"], "partial": round(p, 4), "full": round(mean - partial * p, 4)})
    return shares


def sandbox_throughput(rows: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    """Programs per second through `humaneval.grade` (the sandbox `code_exec` runs) with `workers`."""
    start = time.perf_counter()
    graded = humaneval.grade(rows, [r["canonical_solution"] for r in rows], workers=workers)
    seconds = time.perf_counter() - start
    return {
        "programs": len(rows),
        "workers": workers,
        "seconds": round(seconds, 2),
        "programs_per_second": round(len(rows) / seconds, 1),
        "all_passed": all(g["correct"] for g in graded),
    }


def render(metrics: dict[str, Any]) -> str:
    """results.md: what was run, the comparison with n, intervals and the paired test, scores, sandbox."""
    base, trained = metrics["evaluation"]["base"], metrics["evaluation"]["trained"]
    paired, warm, rl = metrics["evaluation"]["paired"], metrics["warmup"], metrics["grpo"]
    shares, sandbox = metrics["score_shares"], metrics["sandbox"]

    def row(name: str, r: dict[str, Any]) -> str:
        lo, hi = (100 * x for x in r["ci95"])
        return f"| {name} | {100 * r['accuracy']:.1f}% | {r['correct']} / {r['n']} | [{lo:.1f}%, {hi:.1f}%] |"

    first, last = shares[: len(shares) // 4 or 1], shares[-(len(shares) // 4 or 1) :]

    def mean_share(part: list[dict], key: str) -> str:
        return f"{100 * sum(s[key] for s in part) / len(part):.0f}%"

    lines = [
        "# Miniature code reproduction: GRPO on the code_exec reward",
        "",
        f"`{BUILTIN}` ({metrics['model_parameters']:,} parameters), warmed up for {warm['steps']} supervised "
        f"steps (loss {warm['loss_first']:.2f} -> {warm['loss_final']:.2f}), then {rl['global_step']} GRPO "
        f"steps (recipe `{RECIPE}`, reward code_exec), evaluated greedily (pass@1) on {base['n']} held-out "
        f"synthetic function problems (seed {metrics['seed']}).",
        "",
        "| model | pass@1 | passed / n | 95% interval (Wilson) |",
        "|---|---:|---:|---|",
        row("base (warm-up only)", base),
        row("trained (warm-up + GRPO)", trained),
        "",
        f"Paired exact McNemar test on the {base['n']} problems: {paired['trained_only_correct']} solved "
        f"only after GRPO, {paired['base_only_correct']} only before; p = {paired['mcnemar_p']:.2g} "
        f"({'passes' if metrics['passed'] else 'FAILS'} p < {reproduce.P_MAX} with trained > base).",
        "",
        "## The reward during training",
        "",
        "| GRPO steps | completions scoring partial (ran, a test failed) | scoring full (all tests passed) |",
        "|---|---:|---:|",
        f"| first {len(first)} | {mean_share(first, 'partial')} | {mean_share(first, 'full')} |",
        f"| last {len(last)} | {mean_share(last, 'partial')} | {mean_share(last, 'full')} |",
        "",
        f"Sandbox: {sandbox['programs']} programs in {sandbox['seconds']:.1f} s with {sandbox['workers']} "
        f"workers, {sandbox['programs_per_second']:.1f} programs/s.",
        "",
        f"Wall time: {metrics['wall_time_s']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grpo_rlvr.reproduce_code",
        description=__doc__.split("\n")[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("reproduce-mini-code"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="data, warm-up and GRPO seed")
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="full",
        help="small: fewer GRPO steps and held-out problems, a quick look",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started, out, size = time.time(), args.out, SIZES[args.size]

    def phase(number: int) -> None:
        reproduce.phase(number, PHASES, "reproduce-mini-code")

    phase(1)
    data = synthetic_code.write_splits(out / "data", size.splits, args.seed, {"warmup": WARMUP_WRONG})
    warmup_rows = humaneval.load_problems(data["warmup"])

    phase(2)  # the random built-in after a supervised warm-up that teaches right bodies and slips
    base = out / "base"
    warm = reproduce.warm_up(
        BUILTIN, warmup_rows, base, steps=WARMUP_STEPS, learning_rate=WARMUP_LR, seed=args.seed,
        pairs=warmup_pairs,
    )  # fmt: skip

    phase(3)  # the recipe keeps test logs short; here a progress bar helps
    overrides = {"disable_tqdm": False, **({"max_steps": size.grpo_steps} if size.grpo_steps else {})}
    summary, steps = reproduce.grpo(base, data["train"], out / "grpo", RECIPE, seed=args.seed, **overrides)
    batch = summary["config"]["training"]["per_device_train_batch_size"]

    phase(4)  # held-out pass@1, base vs trained, then the sandbox's own speed on the same problems
    evaluation = reproduce.compare(
        base, Path(summary["model_dir"]), data["test"], out / "eval", "humaneval", EVAL_MAX_NEW_TOKENS
    )
    base_result, trained_result = evaluation["results"]
    (paired,) = evaluation["comparison"]["by_shots"]
    passed = paired["trained"] > paired["base"] and paired["mcnemar_p"] < reproduce.P_MAX
    shares = score_shares(steps, batch)
    test_rows = humaneval.load_problems(data["test"])

    metrics = {
        "seed": args.seed,
        "size": args.size,
        "sizes": size.splits,
        "model_parameters": reproduce.parameters(base),
        "warmup": warm,
        "grpo": {k: summary[k] for k in ("global_step", "rewards", "wall_time_s")},
        "grpo_log": steps.logs,
        "score_shares": shares,
        "sandbox": sandbox_throughput(test_rows, min(4, os.cpu_count() or 1)),
        "evaluation": {"base": base_result, "trained": trained_result, "paired": paired, "dir": "eval"},
        "passed": passed,
        "wall_time_s": round(time.time() - started, 1),
    }
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out / RESULTS).write_text(render(metrics), encoding="utf-8")
    curves = {key: ([s["step"] for s in shares], [s[key] for s in shares]) for key in ("partial", "full")}
    reproduce.plot(curves, [base_result, trained_result], out / PLOT, "share of the step's completions")
    print((out / RESULTS).read_text(encoding="utf-8"))
    if not passed:
        print(
            f"reproduce-mini-code: the trained model does not beat the base at p < {reproduce.P_MAX}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
