"""GSM8K (and prepared) data: loading, validation, gold answers, few-shot prompts, prompt lengths.

Rows come in two shapes. GSM8K rows carry `question` and `answer` (a worked solution ending in
`#### N`); the gold number is read from that line and k fixed worked examples go in front of the
question. Prepared rows already carry a `prompt` (plus `final_answer`, `tests`, `keywords` … for the
rewards that read them) and are used as they are. Either way every example leaves here with a `prompt`.

A bad row is reported with its file and line and dropped; data that leaves no usable row is an error.
A prompt longer than the limit is never cut: it is dropped and counted, or the run fails (`policy`).
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpo_rlvr.answers import format_number, parse_number

GSM8K_HUB_ID = "openai/gsm8k"
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")
SOLUTION_PREFIX = "Let's think step by step."
ANSWER_LINE = "#### The final answer is {}"
MAX_SHOTS = 8

# Our own worked examples (written for this project, not taken from GSM8K, so they can never overlap
# its test split). Always used in this order: k shots = the first k.
EXEMPLARS: tuple[tuple[str, str], ...] = (
    (
        "A baker makes 24 muffins in the morning and 18 in the afternoon. He sells 30 of them. "
        "How many muffins are left?",
        "He makes 24 + 18 = 42 muffins.\nAfter selling 30, 42 - 30 = 12 muffins are left.\n#### 12",
    ),
    (
        "Maya reads 15 pages of her book every day. Her book has 240 pages. How many days does "
        "she need to finish it?",
        "She needs 240 / 15 = 16 days.\n#### 16",
    ),
    (
        "A shirt costs $25 and is on sale for 20% off. Tom buys 3 shirts on sale. How much does he pay?",
        "The discount is 25 * 0.2 = $5 per shirt.\nEach shirt costs 25 - 5 = $20.\n"
        "Three shirts cost 3 * 20 = $60.\n#### 60",
    ),
    (
        "The temperature was 4 degrees at noon and dropped 11 degrees by midnight. What was the "
        "temperature at midnight?",
        "At midnight it was 4 - 11 = -7 degrees.\n#### -7",
    ),
    (
        "A farm has 1,250 chickens. Each chicken lays 5 eggs a week. How many eggs does the farm "
        "collect in 2 weeks?",
        "In one week the chickens lay 1250 * 5 = 6250 eggs.\nIn two weeks they lay 6250 * 2 = "
        "12500 eggs.\n#### 12,500",
    ),
    (
        "Lena has 3 boxes with 8 pencils each. She gives 5 pencils to each of her 2 friends. How "
        "many pencils does she keep?",
        "She has 3 * 8 = 24 pencils.\nShe gives away 5 * 2 = 10 pencils.\nShe keeps 24 - 10 = 14 "
        "pencils.\n#### 14",
    ),
    (
        "A car uses 6 liters of fuel for every 100 km. How many liters does it use for a 350 km trip?",
        "The trip is 350 / 100 = 3.5 times 100 km.\nIt uses 3.5 * 6 = 21 liters.\n#### 21",
    ),
    (
        "Sam splits a 3 kg bag of rice equally into 4 jars. How many kilograms of rice go in each jar?",
        "Each jar gets 3 / 4 = 0.75 kg.\n#### 0.75",
    ),
)

_CALCULATOR = re.compile(r"<<[^<>\n]*>>")  # GSM8K's calculator annotations: `<<48/2=24>>`


class DataError(ValueError):
    """Data that cannot be used; the message says what to fix."""


@dataclass
class LoadReport:
    """What loading kept and dropped, with a reason and place for every dropped row."""

    kept: int = 0
    problems: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    def drop(self, where: str, reason: str) -> None:
        self.problems.append(f"{where}: {reason}")
        self.reasons[reason.split(":")[0]] += 1

    def summary(self) -> str:
        dropped = sum(self.reasons.values())
        if not dropped:
            return f"{self.kept} rows, none dropped"
        why = ", ".join(f"{n} {reason}" for reason, n in self.reasons.most_common())
        return f"{self.kept} rows kept, {dropped} dropped ({why})"


def gold_from_solution(solution: str) -> str:
    """The gold number of a GSM8K solution (`… #### 1,200` -> `1200`), canonical and exact."""
    _, sep, tail = solution.rpartition("####")
    value = parse_number(tail) if sep else None
    if value is None:
        raise ValueError(f"gold answer is not a number: {tail.strip()[:40]!r}" if sep else "no '####' line")
    return format_number(value)


def training_solution(solution: str) -> str:
    """A GSM8K solution in the format the model is trained to write (calculator notes removed)."""
    reasoning = _CALCULATOR.sub("", solution.rpartition("####")[0]).strip()
    return f"{SOLUTION_PREFIX} {reasoning}\n{ANSWER_LINE.format(gold_from_solution(solution))}"


def worked_example(question: str, answer: str) -> str:
    """One solved problem as a shot in a prompt: the prompt's own format, then the trained solution."""
    return f"Question: {question}\nSolution: {training_solution(answer)}\n\n"


@functools.cache
def _shots(num_shots: int) -> str:
    """The first k worked examples, built once per k (every prompt of a dataset repeats them)."""
    return "".join(worked_example(q, a) for q, a in EXEMPLARS[:num_shots])


def build_prompt(question: str, num_shots: int) -> str:
    """k fixed worked examples, then the question, ending where the model's solution begins."""
    if not 0 <= num_shots <= MAX_SHOTS:
        raise ValueError(f"num_shots must be between 0 and {MAX_SHOTS}, got {num_shots}")
    return f"{_shots(num_shots)}Question: {question.strip()}\nSolution: {SOLUTION_PREFIX}"


def _example(row: Any) -> dict[str, Any]:
    """One raw row -> one validated example; ValueError says why the row is unusable."""
    if not isinstance(row, dict):
        raise ValueError(f"not a JSON object: {type(row).__name__}")
    if "prompt" in row:
        prompt = row["prompt"]
        if not isinstance(prompt, str | list) or not prompt:
            raise ValueError("empty prompt")
        example = dict(row)
        if "final_answer" in row:
            value = parse_number(str(row["final_answer"]))
            if value is None:
                raise ValueError(f"final_answer is not a number: {str(row['final_answer'])[:40]!r}")
            example["final_answer"] = format_number(value)
        return example
    missing = [k for k in ("question", "answer") if k not in row]
    if missing:
        raise ValueError(f"missing field: {', '.join(missing)} (need question+answer, or prompt)")
    question, answer = row["question"], row["answer"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError("empty question")
    if not isinstance(answer, str):
        raise ValueError("answer is not text")
    gold = gold_from_solution(answer)
    return {**row, "final_answer": gold}


def data_files(path: Path) -> list[Path]:
    """A data file, or every data file (sorted, recursively) in a folder such as a SageMaker channel."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"data path does not exist: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)
    if not files:
        raise DataError(f"no {'/'.join(DATA_SUFFIXES)} files in {path}")
    return files


def _raw_rows(path: Path, report: LoadReport) -> list[tuple[str, Any]]:
    """(place, row) pairs from one file; unreadable lines are reported, not raised."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as err:  # pyarrow raises several types for a broken file
            raise DataError(f"{path}: not a readable Parquet file ({err})") from err
        return [(f"{path}:row {i + 1}", row) for i, row in enumerate(table.to_pylist())]
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
        return [(f"{path}:item {i + 1}", row) for i, row in enumerate(rows)]
    pairs = []
    # Split on "\n" only: str.splitlines() also breaks at U+2028 and friends, which JSON strings may hold.
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            pairs.append((f"{path}:{lineno}", json.loads(line)))
        except json.JSONDecodeError as err:
            report.drop(f"{path}:{lineno}", f"malformed JSON line: {err.msg}")
    return pairs


def load_examples(
    source: str | Path, *, hub_config: str = "main", split: str = "train"
) -> tuple[list[dict[str, Any]], LoadReport]:
    """Load rows from a local file/folder or a hub dataset id and validate them."""
    report = LoadReport()
    path = Path(source)
    if path.exists() or str(source).startswith((".", "/")):
        raw = [pair for f in data_files(path) for pair in _raw_rows(f, report)]
    else:  # a hub id such as openai/gsm8k (needs network; never taken in tests)
        from datasets import load_dataset

        dataset = load_dataset(str(source), hub_config, split=split)
        raw = [(f"{source}[{split}]:row {i + 1}", row) for i, row in enumerate(dataset)]
    examples = []
    for where, row in raw:
        try:
            examples.append(_example(row))
        except ValueError as err:
            report.drop(where, str(err))
    report.kept = len(examples)
    if not examples:
        shown = "\n  ".join(report.problems[:5]) or "the source holds no rows"
        raise DataError(f"no usable rows in {source}:\n  {shown}")
    return examples, report


def add_prompts(examples: list[dict[str, Any]], num_shots: int) -> list[dict[str, Any]]:
    """Give every question row its k-shot prompt; prepared prompt rows are used as they are."""
    if num_shots and any("prompt" in e for e in examples):
        raise DataError(f"num_shots={num_shots} applies to question rows; set num_shots: 0 for prompt rows")
    return [e if "prompt" in e else {**e, "prompt": build_prompt(e["question"], num_shots)} for e in examples]


def split_train_val(
    examples: list[dict[str, Any]], val_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A seeded, reproducible split; the order inside each part follows the source."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = round(len(examples) * val_fraction)
    val_ids = set(order[:n_val])
    train = [e for i, e in enumerate(examples) if i not in val_ids]
    val = [e for i, e in enumerate(examples) if i in val_ids]
    return train, val


def prompt_lengths(examples: list[dict[str, Any]], tokenizer: Any) -> list[int]:
    """Token count of each prompt, as the trainer will see it (chat prompts through the template)."""
    texts = [
        e["prompt"]
        if isinstance(e["prompt"], str)
        else tokenizer.apply_chat_template(e["prompt"], tokenize=False, add_generation_prompt=True)
        for e in examples
    ]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def enforce_prompt_limit(
    examples: list[dict[str, Any]], tokenizer: Any, max_tokens: int, policy: str = "drop"
) -> tuple[list[dict[str, Any]], int]:
    """Never cut a prompt: drop over-long ones (returning how many) or fail, by `policy`."""
    if policy not in ("drop", "fail"):
        raise ValueError(f"prompt length policy must be 'drop' or 'fail', got {policy!r}")
    lengths = prompt_lengths(examples, tokenizer)
    kept = [e for e, n in zip(examples, lengths, strict=True) if n <= max_tokens]
    over = len(examples) - len(kept)
    if over and (policy == "fail" or not kept):
        raise DataError(
            f"{over} of {len(examples)} prompts are longer than max_prompt_tokens={max_tokens} "
            f"(longest {max(lengths)} tokens): raise max_prompt_tokens, use fewer shots, "
            "or set prompt_length_policy: drop"
        )
    return kept, over


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows as JSON lines, creating the folder (a channel ready to upload)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
