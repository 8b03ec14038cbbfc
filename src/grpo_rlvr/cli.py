"""`grpo-rlvr`: GRPO training with verifiable rewards, data preparation, grading and evaluation."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from grpo_rlvr import data
from grpo_rlvr.datafiles import DataError, json_lines, jsonl_text, write_jsonl
from grpo_rlvr.files import write_atomic
from grpo_rlvr.help_format import HelpFormatter
from grpo_rlvr.overrides import from_flags
from grpo_rlvr.prompt_format import DEFAULT, PromptFormat

CHANNEL_FILE = "data.jsonl"  # what `prepare` writes in each channel folder


def _prepare(args: argparse.Namespace) -> int:
    examples, report = data.load_examples(args.source, hub_config=args.hub_config, split=args.split)
    for problem in report.problems[: args.show_problems]:
        print(f"dropped {problem}", file=sys.stderr)
    print(f"loaded {args.source}: {report.summary()}")
    placed = list(zip(examples, report.places, strict=True))
    train, val = data.split_train_val(placed, args.val_fraction, args.seed)
    # Both channels are rendered before either file is touched; each is then replaced whole.
    parts = {"train": train, "val": val}
    texts = {part: jsonl_text([e for e, _ in p], [w for _, w in p]) for part, p in parts.items() if p}
    for part, text in texts.items():
        write_atomic(args.out / part / CHANNEL_FILE, text)
    stale = args.out / "val" / CHANNEL_FILE
    if not val and stale.exists():  # an earlier split's validation rows would overlap this training set
        stale.unlink()
        print(f"removed {stale}: this split has no validation rows")
    print(f"wrote train={len(train)} val={len(val)} to {args.out} (seed {args.seed})")
    if args.tokenizer:
        from transformers import AutoTokenizer

        from grpo_rlvr.tiny import resolve_model_path

        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(args.tokenizer))
        lengths = sorted(data.prompt_lengths(data.add_prompts(examples, args.shots), tokenizer))

        def pct(q: float) -> int:
            return lengths[min(len(lengths) - 1, int(q * len(lengths)))]

        print(
            f"prompt tokens ({args.shots}-shot): min={lengths[0]} median={pct(0.5)} p99={pct(0.99)} "
            f"max={lengths[-1]}"
        )
    return 0


def _grade(args: argparse.Namespace) -> int:
    from grpo_rlvr.grading import accuracy_line, grade_one

    rows, places, correct = [], [], 0
    for where, row in json_lines(args.file):
        try:
            if isinstance(row, ValueError):
                raise row
            graded = grade_one(str(row[args.completion_field]), row[args.answer_field])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{where}: cannot grade this row ({err!r})") from err
        rows.append({**row, **graded})
        places.append(where)
        correct += graded["correct"]
    if not rows:
        raise DataError(f"{args.file} holds no rows to grade")
    if args.out:
        write_jsonl(rows, args.out, places)
    print(accuracy_line(correct, len(rows)))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from grpo_rlvr import humaneval
    from grpo_rlvr.evaluation import evaluate
    from grpo_rlvr.evaluation.models import ModelSpec
    from grpo_rlvr.grading import accuracy_line
    from grpo_rlvr.tasks import GSM8KTask, HumanEvalTask, Task

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.adapter and args.compare:
        raise ValueError("--adapter goes with --model; with --compare write MODEL+ADAPTER")
    models = [ModelSpec(args.model, args.adapter)] if args.model else args.compare
    prompt_format, end_tokens = _training_format(args.recipe)
    out = args.out or evaluate.default_out_dir()
    if (out / evaluate.METRICS).exists() and not args.overwrite:
        raise ValueError(
            f"{out} already holds an evaluation ({evaluate.METRICS}): pass --out with a new folder, "
            "or --overwrite to replace it"
        )
    if args.task == HumanEvalTask.name:
        task: Task = HumanEvalTask()
        shots = evaluate.parse_shots(args.shots or "0")
        examples = humaneval.load_problems(args.data, args.limit)
        info = {"source": args.data or humaneval.PACKAGED_HUMANEVAL, "split": None, "limit": args.limit}
        print(f"evaluating {len(examples)} HumanEval problems from {info['source']}; results into {out}")
    else:
        task = GSM8KTask(prompt_format)
        shots = evaluate.parse_shots(args.shots or "0,2,4,8")
        examples, info = evaluate.load_eval_examples(args.data, args.split, args.limit)
        print(
            f"evaluating {len(examples)} questions from {info['source']} ({info['loaded']}), "
            f"{'chat' if prompt_format.chat else 'text'} prompts; results into {out}"
        )
    metrics = evaluate.evaluate_examples(
        models,
        examples,
        out,
        shots=shots,
        backend=args.backend,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        compare_base_trained=bool(args.compare),
        data_info=info,
        end_tokens=end_tokens,
        task=task,
    )
    for r in metrics["results"]:
        print(f"{r['model']} {r['shots']}-shot: {accuracy_line(r['correct'], r['n'])}")
    print(f"wrote {evaluate.PREDICTIONS}, {evaluate.METRICS}, {evaluate.TABLE}, {evaluate.PLOT} to {out}")
    return 0


def _training_format(recipe: str | None) -> tuple[PromptFormat, list[str]]:
    """The prompt format and end tokens a recipe trains with (validated as for training), so a model is
    graded in the format it learned; without a recipe, the default text format."""
    if recipe is None:
        return DEFAULT, []
    from grpo_rlvr.config.loading import load_config

    config = load_config(recipe)
    return config.prompt_format, list(config.data.end_tokens or [])


def _launch(args: argparse.Namespace) -> int:
    from grpo_rlvr.launch import entrypoint

    return entrypoint.main(args.overrides)


def _train(args: argparse.Namespace) -> int:
    from grpo_rlvr.config.loading import load_config

    recipe, overrides = args.recipe, args.overrides
    if args.settings:  # from `grpo-rlvr launch`: typed values; key=value given here win over the file's
        from grpo_rlvr.handoff import read_settings
        from grpo_rlvr.overrides import parse_overrides

        recipe, typed = read_settings(args.settings)
        overrides = typed | parse_overrides(args.overrides)
    config = load_config(recipe, overrides)  # a recipe's mistakes come before torch and TRL load
    from grpo_rlvr.training import grpo

    return grpo.execute(config, print_config=args.print_config)


def _env(args: argparse.Namespace) -> int:
    """Versions and devices: the first thing to paste into a bug report."""
    import torch

    from grpo_rlvr import cuda
    from grpo_rlvr.versions import attention_choice, package_versions

    for name, found in package_versions().items():
        print(f"{name}=={found}" if found else f"{name}: not installed")
    print(f"cuda_available={torch.cuda.is_available()} gpus={torch.cuda.device_count()}")
    print("\n".join(cuda.probe().lines()))
    attention, why = attention_choice()
    print(f"attention: {attention} ({why}; a recipe's attn_implementation overrides it)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo-rlvr", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="validate a dataset and write train/ and val/ channels as JSONL")
    p.add_argument(
        "--source",
        default=data.PACKAGED_GSM8K,
        help=f"{data.PACKAGED_GSM8K} (shipped), a hub id, or a JSONL/JSON/Parquet file or folder",
    )
    p.add_argument("--hub-config", default="main", help="hub dataset configuration")
    p.add_argument("--split", default="train", help="hub split to read")
    p.add_argument("--out", type=Path, required=True, help="folder that receives train/ and val/")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of rows written to val/")
    p.add_argument("--seed", type=int, default=42, help="seed of the train/val split")
    p.add_argument("--tokenizer", help="print prompt-token statistics with this tokenizer")
    p.add_argument("--shots", type=int, default=8, help="shots for the prompt statistics")
    p.add_argument("--show-problems", type=int, default=20, help="how many dropped rows to list")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("grade", help="grade any model's outputs against gold answers")
    p.add_argument("file", type=Path, help="JSONL file, one row per model output")
    p.add_argument("--completion-field", default="completion", help="field holding the model's text")
    p.add_argument("--answer-field", default="answer", help="field holding the gold answer or solution")
    p.add_argument("--out", type=Path, help="write rows with `extracted` and `correct` here")
    p.set_defaults(func=_grade)

    from grpo_rlvr.evaluation.evaluate import BACKENDS
    from grpo_rlvr.tasks import TASKS, GSM8KTask, HumanEvalTask

    p = sub.add_parser(
        "evaluate",
        help="greedy GSM8K accuracy or HumanEval pass@1 with 95%% intervals, tables and a plot",
        description="Greedy GSM8K accuracy (--task gsm8k) or HumanEval pass@1 (--task humaneval, every "
        "program run in the code_exec sandbox) with 95% intervals, tables and a plot. GSM8K prompts are in "
        "the default text format unless --recipe names the recipe the model was trained with: then its "
        "prompt_format (chat prompts rendered by each model's chat template) and end_tokens are used; "
        "HumanEval prompts are the problems' own, generation also ending at the recipe's end_tokens.",
    )
    p.add_argument("--task", choices=sorted(TASKS), default="gsm8k", help="what to measure (default gsm8k)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="local folder, hub id or builtin:tiny-qwen2")
    which.add_argument(
        "--compare", nargs=2, metavar=("BASE", "TRAINED"), help="two models, each MODEL or MODEL+ADAPTER"
    )
    p.add_argument("--adapter", help="PEFT adapter folder, merged into --model")
    p.add_argument(
        "--recipe",
        help="recipe YAML file or baked recipe name the model was trained with: prompts in its "
        "prompt_format, generation also ending at its end_tokens (default: the default text format)",
    )
    p.add_argument(
        "--data",
        help=f"gsm8k: JSONL/JSON/Parquet file or folder, or a hub id (default: {data.PACKAGED_GSM8K}, "
        "shipped); "
        "humaneval: a JSONL (.gz) file of HumanEval-shaped problems (default: builtin:humaneval, shipped)",
    )
    p.add_argument("--split", default="test", help="hub split, or <split>.jsonl inside a --data folder")
    p.add_argument("--shots", help="comma-separated shot counts (0-8); default 0,2,4,8 (humaneval: 0 only)")
    p.add_argument("--limit", type=int, help="evaluate only the first N questions (default: all)")
    p.add_argument("--backend", choices=BACKENDS, default="hf", help="generation with transformers or vLLM")
    p.add_argument("--batch-size", type=int, help="hf: prompts per generate() (16); vllm: max_num_seqs")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help=f"tokens generated per answer (default: {GSM8KTask.max_new_tokens}; "
        f"humaneval: {HumanEvalTask.max_new_tokens})",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for the results; default: $SAGEMAKER_BASE_DIR/output/data, /opt/ml/output/data in the "
        "container, else ./eval",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier evaluation in --out"
    )
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "launch",
        help="the container's `train`: read /opt/ml (or $SAGEMAKER_BASE_DIR), train on 1 or N processes",
        description="Reads $SAGEMAKER_BASE_DIR (default /opt/ml); env GRPO_RLVR_RECIPE, "
        "GRPO_RLVR_HOST_ADDRS, GRPO_RLVR_MAIN_PROCESS_PORT. Exit 0 done, 1 training failed, 2 an input "
        "to fix, 143 stopped by SIGTERM (a restart resumes); every non-zero exit leaves output/failure. "
        "See docs/sagemaker-training.md.",
    )
    # REMAINDER: a stray argument becomes the launcher's failure file, not an argparse exit without one.
    p.add_argument(
        "overrides", nargs=argparse.REMAINDER, metavar="key=value", help="over hyperparameters (as for train)"
    )
    p.set_defaults(func=_launch)

    p = sub.add_parser(
        "train",
        help="GRPO training from a recipe plus key=value overrides",
        description="GRPO training from a recipe plus key=value overrides. By default it writes checkpoints "
        "to outputs/checkpoints, the adapter and merged model to outputs/model and run_summary.json to "
        "outputs/summary, under the working directory (recipe keys output_dir, model_dir, summary_dir).",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--recipe", help="recipe YAML file, or a baked recipe name")
    which.add_argument(
        "--settings",
        type=Path,
        help="a recipe with typed overrides in a private JSON file, as `grpo-rlvr launch` hands them over",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="recipe keys to override (YAML values: rewards=[a,b])",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=_train)

    p = sub.add_parser("env", help="print package versions and devices")
    p.set_defaults(func=_env)
    for command in sub.choices.values():
        command.formatter_class = HelpFormatter
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("grpo-rlvr")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


# Each command's own options; any other `--key value` before `train` or `launch` is a recipe override.
OWN_OPTIONS = {
    "train": ("--recipe", "--settings", "--print-config", "--help", "-h"),
    "launch": ("--help", "-h"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in OWN_OPTIONS:  # TRL's `--learning_rate 1e-5` habit reads as learning_rate=1e-5
        argv = [argv[0], *from_flags(argv[1:], OWN_OPTIONS[argv[0]])]
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:  # DataError and ConfigError are ValueErrors
        print(f"grpo-rlvr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
