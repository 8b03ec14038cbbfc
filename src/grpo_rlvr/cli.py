"""`grpo-rlvr`: one console script, a subcommand per job. Parsing only; the work lives in the modules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grpo_rlvr.data import DataError


def _prepare(args: argparse.Namespace) -> int:
    from grpo_rlvr import data

    examples, report = data.load_examples(args.source, hub_config=args.hub_config, split=args.split)
    for problem in report.problems[: args.show_problems]:
        print(f"dropped {problem}", file=sys.stderr)
    print(f"loaded {args.source}: {report.summary()}")
    train, val = data.split_train_val(examples, args.val_fraction, args.seed)
    data.write_jsonl(train, args.out / "train" / "data.jsonl")
    if val:
        data.write_jsonl(val, args.out / "val" / "data.jsonl")
    print(f"wrote train={len(train)} val={len(val)} to {args.out} (seed {args.seed})")
    if args.tokenizer:
        from transformers import AutoTokenizer

        from grpo_rlvr.tiny import resolve_model_path

        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(args.tokenizer))
        lengths = sorted(data.prompt_lengths(data.add_prompts(examples, args.shots), tokenizer))
        pct = lambda q: lengths[min(len(lengths) - 1, int(q * len(lengths)))]  # noqa: E731
        print(
            f"prompt tokens ({args.shots}-shot): min={lengths[0]} median={pct(0.5)} p99={pct(0.99)} "
            f"max={lengths[-1]}"
        )
    return 0


def _grade(args: argparse.Namespace) -> int:
    from grpo_rlvr.data import write_jsonl
    from grpo_rlvr.grading import accuracy_line, grade_one

    rows, correct = [], 0
    with args.file.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                graded = grade_one(str(row[args.completion_field]), row[args.answer_field])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise DataError(f"{args.file}:{lineno}: cannot grade this row ({err!r})") from err
            rows.append({**row, **graded})
            correct += graded["correct"]
    if not rows:
        raise DataError(f"{args.file} holds no rows to grade")
    if args.out:
        write_jsonl(rows, args.out)
    print(accuracy_line(correct, len(rows)))
    return 0


def _env(args: argparse.Namespace) -> int:
    """Versions and devices: the first thing to paste into a bug report."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    packages = ["grpo-rlvr", "torch", "trl", "transformers", "peft", "accelerate", "datasets", "deepspeed",
                "bitsandbytes", "vllm", "flash-attn", "mlflow", "sagemaker-training"]
    for name in packages:
        try:
            print(f"{name}=={version(name)}")
        except PackageNotFoundError:
            print(f"{name}: not installed")
    print(f"cuda_available={torch.cuda.is_available()} gpus={torch.cuda.device_count()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo-rlvr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="validate a dataset and write train/ and val/ channels as JSONL")
    p.add_argument("--source", default="openai/gsm8k", help="hub id, or a JSONL/JSON/Parquet file or folder")
    p.add_argument("--hub-config", default="main")
    p.add_argument("--split", default="train", help="hub split to read")
    p.add_argument("--out", type=Path, required=True, help="folder that receives train/ and val/")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tokenizer", help="print prompt-token statistics with this tokenizer")
    p.add_argument("--shots", type=int, default=8, help="shots for the prompt statistics")
    p.add_argument("--show-problems", type=int, default=20, help="how many dropped rows to list")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("grade", help="grade any model's outputs against gold answers")
    p.add_argument("file", type=Path)
    p.add_argument("--completion-field", default="completion")
    p.add_argument("--answer-field", default="answer")
    p.add_argument("--out", type=Path, help="write rows with `extracted` and `correct` here")
    p.set_defaults(func=_grade)

    p = sub.add_parser("env", help="print package versions and devices")
    p.set_defaults(func=_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, FileNotFoundError, ValueError) as err:
        print(f"grpo-rlvr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
