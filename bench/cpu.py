"""`make bench`: CPU measurements side by side in one run, printed as a table and written as JSON.

1. reward throughput: GSM8K format + correctness on one pinned core; code_exec with 1, 2 and 4 sandboxes
2. prompts: load, build (8-shot) and tokenize the whole GSM8K train split
3. wrapper overhead: `training.grpo.run` against bare TRL GRPOTrainer, identical settings, alternating runs
4. start-up: `grpo-rlvr launch` on a fake /opt/ml tree to its first training step, against floors

Every number is measured in this run; targets are printed beside them, never in their place. Torch
gets one thread by default (here and in the child processes): on a shared 2-core machine two threads
per process fight the other processes for the cores and make step times swing by 10x.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers
from measure import machine_info, on_one_core
from overhead import bench_overhead
from prompts import bench_prompts
from rewards import ADVERSARIAL_TARGET_S, bench_adversarial, bench_gsm8k_rewards
from rewards_code import bench_code_exec_scaling
from startup import bench_startup

from grpo_rlvr.help_format import HelpFormatter
from grpo_rlvr.tiny import resolve_model_path

RESULTS = Path(__file__).resolve().parent / "results.json"
REWARD_TARGET = 200_000  # completions/s on one core
OVERHEAD_TARGET = 0.97  # steps/s ours/bare: at most 3% slower
SECTIONS = ("rewards", "prompts", "overhead", "startup")


def run_sections(
    args: argparse.Namespace, finished: Callable[[dict[str, Any]], None] = lambda _: None
) -> dict[str, Any]:
    """Each chosen section's numbers, with the seconds the section took; `finished` gets the results so
    far after every section, so a long run keeps what it measured if it stops."""
    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        "rewards": lambda: {
            "gsm8k_one_core": on_one_core(bench_gsm8k_rewards, args.reward_completions),
            "adversarial_mb_s": on_one_core(bench_adversarial),
            "code_exec": {
                "completions": args.code_completions,
                "completions_per_s_by_workers": bench_code_exec_scaling(
                    args.code_completions, tuple(args.code_workers)
                ),
            },
        },
        "prompts": lambda: bench_prompts(shots=args.shots),
        "overhead": lambda: bench_overhead(steps=args.overhead_steps, rounds=args.overhead_rounds),
        "startup": lambda: bench_startup(repeats=args.startup_repeats),
    }
    results = {}
    for name in args.sections:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        results[name] = {**jobs[name](), "section_s": time.perf_counter() - start}
        finished(results)
    return results


def table(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measurement, value, target or reference) rows for the sections that ran."""
    rows = []
    if r := results.get("rewards"):
        rate = r["gsm8k_one_core"]["completions_per_s"]
        verdict = "met" if rate >= REWARD_TARGET else "NOT met"
        worst, seconds = max(r["adversarial_mb_s"].items(), key=lambda item: item[1])
        adversarial = "met" if seconds <= ADVERSARIAL_TARGET_S else "NOT met"
        rows += [
            ("GSM8K rewards (format+correctness), 1 core", f"{rate:,.0f} compl/s",
             f"target >= {REWARD_TARGET:,}/s: {verdict}"),
            ("GSM8K rewards, worst adversarial 1 MB text", f"{seconds:.2f} s",
             f"target <= {ADVERSARIAL_TARGET_S:g} s: {adversarial} ({worst})"),
        ]  # fmt: skip
        rates = r["code_exec"]["completions_per_s_by_workers"]
        for w, rate in rates.items():
            scaling = f"; {rate / rates['1']:.2f}x one worker" if "1" in rates and w != "1" else ""
            rows.append((f"code_exec, {w} workers", f"{rate:.1f} compl/s", f"a forked sandbox each{scaling}"))
    if p := results.get("prompts"):
        rows += [
            (f"prompts: {p['rows']:,} rows, {p['shots']}-shot, load+build+tokenize", f"{p['total_s']:.2f} s",
             f"load {p['load_s']:.2f} / build {p['build_s']:.2f} / tokenize {p['tokenize_s']:.2f} s"),
            ("prompt tokens (tiny tokenizer)", f"{p['mean_prompt_tokens']:.0f} mean",
             f"max {p['max_prompt_tokens']}; {p['prompt_tokens_per_s']:,.0f} tokens/s"),
        ]  # fmt: skip
    if o := results.get("overhead"):
        verdict = "met" if o["ratio_ours_over_bare"] >= OVERHEAD_TARGET else "NOT met"
        per_round = ", ".join(f"{x:.3f}" for x in o["ratio_per_round"])
        rows += [
            (f"grpo.run steps/s ({o['ours']['steps_timed']} steps)", f"{o['ours']['steps_per_s']:.2f}",
             f"median step {o['ours']['median_step_s']:.3f} s"),
            (f"bare TRL steps/s ({o['bare']['steps_timed']} steps)", f"{o['bare']['steps_per_s']:.2f}",
             f"median step {o['bare']['median_step_s']:.3f} s"),
            (f"ratio ours/bare ({o['order']})", f"{o['ratio_ours_over_bare']:.3f}",
             f"target >= {OVERHEAD_TARGET}: {verdict}; of medians {o['ratio_of_medians']:.3f}; "
             f"per round {per_round}"),
            ("grpo.run's own callbacks per step", f"{o['callbacks']['per_step_s'] * 1e6:.0f} us",
             f"{o['callbacks_share_of_step']:.3%} of a median step: the only loop code bare TRL lacks"),
        ]  # fmt: skip
    if s := results.get("startup"):
        launcher, bare = s["launcher"], s["bare_trl"]
        rows += [
            ("launch -> first step ends", f"{launcher['first_step_end_s']:.2f} s",
             f"starts at {launcher['first_step_start_s']:.2f} s; exits at {launcher['exit_s']:.2f} s"),
            ("bare TRL script -> first step ends", f"{bare['first_step_end_s']:.2f} s",
             f"starts at {bare['first_step_start_s']:.2f} s; ratio launch/bare "
             f"{s['launcher_over_bare_first_step']:.3f}"),
            ("floor: import grpo_rlvr.training.grpo (torch+TRL)", f"{s['import_grpo_rlvr_training_s']:.2f} s",
             f"python alone {s['python_s']:.3f} s"),
            ("time to a config error: train", f"{s['config_error_train_s']:.2f} s",
             "grpo-rlvr train with a mistyped key, start to exit 2"),
            ("time to a config error: launch", f"{s['config_error_launch_s']:.2f} s",
             "grpo-rlvr launch with a mistyped hyperparameter, start to exit 2 and the failure file"),
        ]  # fmt: skip
    return rows


def print_table(rows: list[tuple[str, str, str]], machine: dict[str, Any], what: str) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    print(
        f"\nCPU benchmark {machine['date']}, {what}: {machine['cpus_usable']} cores "
        f"({machine['cpu_model']}), torch threads {machine['torch_threads']}, "
        f"load {machine['load_average_1m']:.1f}"
    )
    for name, value, note in rows:
        print(f"  {name:<{widths[0]}}  {value:>{widths[1]}}  {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--sections", type=lambda s: s.split(","), default=list(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")  # fmt: skip
    parser.add_argument("--reward-completions", type=int, default=200_000)
    parser.add_argument("--code-completions", type=int, default=64)
    parser.add_argument("--code-workers", type=lambda s: [int(w) for w in s.split(",")], default=[1, 2, 4],
                        help="comma-separated worker counts for code_exec")  # fmt: skip
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument(
        "--overhead-steps", type=int, default=16, help="steps per run; the first is not timed"
    )
    parser.add_argument("--overhead-rounds", type=int, default=4, help="rounds of A B B A runs")
    parser.add_argument("--startup-repeats", type=int, default=2, help="best of N process starts")
    parser.add_argument("--torch-threads", type=int, default=1, help="and child processes' OMP_NUM_THREADS")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if unknown := set(args.sections) - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")

    transformers.logging.set_verbosity_error()  # the runs' warnings would break up the table
    os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)
    torch.set_num_threads(args.torch_threads)
    resolve_model_path("builtin:tiny-qwen2")  # build the tiny model once, outside every measurement
    machine = machine_info()
    start = time.perf_counter()

    def save(results: dict[str, Any]) -> None:
        """The report so far into --out, and the rows of the section that just finished."""
        done = list(results) == args.sections
        if done:
            machine["load_average_1m_after"] = os.getloadavg()[0]
        report = {"machine": machine, "settings": vars(args) | {"out": str(args.out)}, **results,
                  "total_s": time.perf_counter() - start, "complete": done}  # fmt: skip
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        name = list(results)[-1]
        if rows := table({name: results[name]}):
            print_table(rows, machine, f"{name} ({len(results)} of {len(args.sections)} sections)")
        print(f"  saved to {args.out}", flush=True)

    results = run_sections(args, save)
    print_table(table(results), machine, "all sections")
    print(f"  total {time.perf_counter() - start:.0f} s; all numbers in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
