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
import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpo_rlvr.answers import format_number, parse_number
from grpo_rlvr.datafiles import SHOWN_ISSUES, DataError, DroppedRows, data_files, raw_rows
from grpo_rlvr.files import is_local_path, local_path
from grpo_rlvr.hub import HubUnavailable, check_dataset
from grpo_rlvr.prompt_format import DEFAULT, PromptFormat

# GSM8K (MIT) ships inside the package, so no run needs a dataset hub; see gsm8k_data/README.md.
PACKAGED_GSM8K = "builtin:gsm8k"
PACKAGED_GSM8K_DIR = Path(__file__).with_name("gsm8k_data")
_CALCULATOR = re.compile(r"<<[^<>\n]*>>")  # GSM8K's calculator annotations: `<<48/2=24>>`


@dataclass
class LoadReport:
    """What loading kept and dropped, with a reason and place for every dropped row."""

    kept: int = 0
    problems: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    places: list[str] = field(default_factory=list)  # file:line of every kept row, in order
    skipped: str = ""  # hidden entries and files reached twice in a folder, said in the summary

    def drop(self, where: str, reason: str) -> None:
        self.problems.append(f"{where}: {reason}")
        self.reasons[reason.split(":")[0]] += 1

    def issues(self, limit: int = SHOWN_ISSUES) -> dict[str, Any]:
        """Every dropped row counted, the first `limit` named as file:line: for logs and run_summary.json."""
        return DroppedRows(self.problems).issues(limit)

    def summary(self) -> str:
        dropped = sum(self.reasons.values())
        why = ", ".join(f"{n} {reason}" for reason, n in self.reasons.most_common())
        rows = (
            f"{self.kept} rows kept, {dropped} dropped ({why})"
            if dropped
            else f"{self.kept} rows, none dropped"
        )
        return f"{rows}; {self.skipped}" if self.skipped else rows


def gold_from_solution(solution: str) -> str:
    """The gold number of a GSM8K solution (`… #### 1,200` -> `1200`), canonical and exact."""
    _, sep, tail = solution.rpartition("####")
    value = parse_number(tail) if sep else None
    if value is None:
        raise ValueError(f"gold answer is not a number: {tail.strip()[:40]!r}" if sep else "no '####' line")
    return format_number(value)


def training_solution(solution: str, prompt_format: PromptFormat = DEFAULT) -> str:
    """A GSM8K solution in the format the model is trained to write (calculator notes removed)."""
    reasoning = _CALCULATOR.sub("", solution.rpartition("####")[0]).strip()
    answer = prompt_format.answer_line.format(gold_from_solution(solution))
    return f"{_labelled(prompt_format.solution_prefix, reasoning)}\n{answer}"


def _labelled(label: str, text: str) -> str:
    """`label text`, or either alone when the other is empty (a format may drop the solution prefix)."""
    return " ".join(part for part in (label, text) if part)


def worked_example(question: str, answer: str, prompt_format: PromptFormat = DEFAULT) -> str:
    """One solved problem as a shot in a prompt: the prompt's own format, then the trained solution."""
    f = prompt_format
    solution = _labelled(f.solution_label, training_solution(answer, f))
    return f"{_labelled(f.question_label, question)}\n{solution}\n\n"


@functools.cache
def _shots(num_shots: int, prompt_format: PromptFormat) -> str:
    """The first k worked examples, built once per k (every prompt of a dataset repeats them)."""
    return "".join(worked_example(q, a, prompt_format) for q, a in prompt_format.exemplars[:num_shots])


def build_prompt(question: str, num_shots: int, prompt_format: PromptFormat = DEFAULT) -> str:
    """k fixed worked examples, then the question, ending where the model's solution begins."""
    prompt_format.check_shots([num_shots], f"num_shots={num_shots}")
    f = prompt_format
    question_line = _labelled(f.question_label, question.strip())
    return f"{_shots(num_shots, f)}{question_line}\n{_labelled(f.solution_label, f.solution_prefix)}"


def build_chat_prompt(
    question: str, num_shots: int, prompt_format: PromptFormat = DEFAULT
) -> list[dict[str, str]]:
    """The same k worked examples as chat turns (question, solution), then the question.

    TRL renders it with the tokenizer's chat template, which closes every assistant turn with its end
    token (`<|im_end|>` for Qwen): the model learns from the shots to end its own answer with it."""
    prompt_format.check_shots([num_shots], f"num_shots={num_shots}")
    turns = []
    for q, a in prompt_format.exemplars[:num_shots]:
        solution = training_solution(a, prompt_format)
        turns += [{"role": "user", "content": q}, {"role": "assistant", "content": solution}]
    return [*turns, {"role": "user", "content": question.strip()}]


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


def packaged_file(directory: Path, name: str, what: str) -> Path:
    """A data file shipped in `directory`, checked against the folder's SHA256SUMS first: a damaged copy
    must not train or grade. `what` names the data set in the error."""
    sums = dict(reversed(line.split()) for line in (directory / "SHA256SUMS").read_text().splitlines())
    path = directory / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    if digest != sums.get(name):
        raise DataError(
            f"{path} does not match its SHA256SUMS entry ({digest}): reinstall grpo-rlvr to restore {what}"
        )
    return path


@functools.cache
def packaged_gsm8k(split: str) -> Path:
    """The shipped GSM8K split, checked against SHA256SUMS first."""
    splits = sorted(p.name.removesuffix(".jsonl") for p in PACKAGED_GSM8K_DIR.glob("*.jsonl"))
    if split not in splits:
        raise DataError(f"{PACKAGED_GSM8K} has the splits {', '.join(splits)}, not {split!r}")
    return packaged_file(PACKAGED_GSM8K_DIR, f"{split}.jsonl", "GSM8K")


def _hub_rows(source: str, hub_config: str, split: str) -> list[tuple[str, Any]]:
    """Rows of a hub dataset, or one line saying why the hub cannot give them."""
    remedy = f"use {PACKAGED_GSM8K} (shipped with the package), a local file or folder, or a mounted channel"
    try:
        check_dataset(source)  # in seconds, where the datasets library would retry for a minute
    except HubUnavailable as err:
        raise DataError(f"{err}: {remedy}") from err
    from datasets import load_dataset

    try:
        dataset = load_dataset(source, hub_config, split=split)
    except (ConnectionError, OSError) as err:  # requests/httpx connection errors are OSErrors
        raise DataError(
            f"{source}: the dataset hub cannot be reached ({type(err).__name__}): {remedy}"
        ) from err
    return [(f"{source}[{split}]:row {i + 1}", row) for i, row in enumerate(dataset)]


def load_examples(
    source: str | Path, *, hub_config: str = "main", split: str = "train"
) -> tuple[list[dict[str, Any]], LoadReport]:
    """Load rows from the packaged GSM8K, a local file/folder or a hub dataset id and validate them."""
    report = LoadReport()
    if str(source) == PACKAGED_GSM8K:
        raw: Iterable[tuple[str, Any]] = raw_rows(packaged_gsm8k(split))
    elif is_local_path(source):
        found = data_files(local_path(source))
        report.skipped = found.skipped()
        raw = (pair for f in found.files for pair in raw_rows(f))
    else:  # a hub id such as openai/gsm8k (needs network)
        raw = _hub_rows(str(source), hub_config, split)
    examples = []
    for where, row in raw:
        try:
            if isinstance(row, ValueError):
                raise row
            examples.append(_example(row))
            report.places.append(where)
        except ValueError as err:
            report.drop(where, str(err))
    report.kept = len(examples)
    if not examples:
        shown = "\n  ".join(report.issues(5)["first"]) or "the source holds no rows"
        raise DataError(f"no usable rows in {source} ({len(report.problems)} dropped):\n  {shown}")
    return examples, report


def add_prompts(
    examples: list[dict[str, Any]], num_shots: int, prompt_format: PromptFormat = DEFAULT
) -> list[dict[str, Any]]:
    """Give every question row its k-shot prompt (text, or chat turns with `prompt_format.chat`);
    prepared prompt rows are used as they are."""
    if num_shots and any("prompt" in e for e in examples):
        raise DataError(f"num_shots={num_shots} applies to question rows; set num_shots: 0 for prompt rows")
    build = build_chat_prompt if prompt_format.chat else build_prompt
    return [
        e if "prompt" in e else {**e, "prompt": build(e["question"], num_shots, prompt_format)}
        for e in examples
    ]


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


def prompt_text(prompt: str | list[dict[str, str]], tokenizer: Any) -> str:
    """A prompt as the model reads it: chat turns through the tokenizer's chat template with the
    assistant's turn opened, as TRL renders a conversational prompt for generation; text as it is."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def end_token_ids(tokens: Sequence[str] | None, tokenizer: Any) -> list[int]:
    """The id of each of a run's `end_tokens`, where generation stops (in training and evaluation alike);
    ValueError for one this tokenizer writes as several (it could end nothing)."""
    ids = []
    for token in tokens or ():
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"{token!r} is {len(encoded)} tokens for this tokenizer, not one")
        ids.append(encoded[0])
    return ids


def prompt_lengths(examples: list[dict[str, Any]], tokenizer: Any) -> list[int]:
    """Token count of each prompt, as the trainer will see it (chat prompts through the template)."""
    texts = [prompt_text(e["prompt"], tokenizer) for e in examples]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def enforce_prompt_limit(
    examples: list[dict[str, Any]],
    tokenizer: Any,
    max_tokens: int,
    policy: str = "drop",
    places: Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Never cut a prompt: drop over-long ones or fail, by `policy`. Returns the kept rows and, for
    every dropped one, its place (file:line from `places`, else its position) and length."""
    if policy not in ("drop", "fail"):
        raise ValueError(f"prompt length policy must be 'drop' or 'fail', got {policy!r}")
    lengths = prompt_lengths(examples, tokenizer)
    where = places if places is not None else [f"row {i + 1}" for i in range(len(examples))]
    kept, dropped = [], []
    for example, n, place in zip(examples, lengths, where, strict=True):
        if n <= max_tokens:
            kept.append(example)
        else:
            dropped.append(f"{place}: prompt of {n} tokens, over max_prompt_tokens={max_tokens}")
    if dropped and (policy == "fail" or not kept):
        raise DataError(
            f"{len(dropped)} of {len(examples)} prompts are longer than max_prompt_tokens={max_tokens} "
            f"(longest {max(lengths)} tokens): raise max_prompt_tokens, use fewer shots, "
            f"or set prompt_length_policy: drop\n  {DroppedRows(dropped).listing()}"
        )
    return kept, dropped


def as_dataset(rows: list[dict[str, Any]]) -> Any:
    """Rows as a `datasets.Dataset` holding every value as loaded: a column only some rows have is a
    column (None in the others), and a column whose type changes across rows keeps each row's own value
    (datasets' Json type) instead of failing to convert."""
    from datasets import Dataset

    columns = list(dict.fromkeys(key for row in rows for key in row))  # from_list reads row 1's keys only
    return Dataset.from_dict({c: [row.get(c) for row in rows] for c in columns}, on_mixed_types="use_json")
