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
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpo_rlvr.answers import format_number, parse_number
from grpo_rlvr.files import DATA_SUFFIXES, is_local_path, local_path
from grpo_rlvr.hub import HubUnavailable, check_dataset
from grpo_rlvr.prompt_format import DEFAULT, PromptFormat

# GSM8K (MIT) ships inside the package, so no run needs a dataset hub; see gsm8k_data/README.md.
PACKAGED_GSM8K = "builtin:gsm8k"
PACKAGED_GSM8K_DIR = Path(__file__).with_name("gsm8k_data")
SHOWN_ISSUES = 10  # dropped rows named one by one in logs and summaries; the rest are counted
BOM = "\ufeff"  # a UTF-8 byte-order mark, which some editors write at the start of a file
_CALCULATOR = re.compile(r"<<[^<>\n]*>>")  # GSM8K's calculator annotations: `<<48/2=24>>`


class DataError(ValueError):
    """Data that cannot be used; the message says what to fix."""


@dataclass
class DroppedRows:
    """Rows left out, each `place: reason`: all counted, the first SHOWN_ISSUES named (file:line), in the
    log, in run_summary.json and in an error alike."""

    problems: list[str] = field(default_factory=list)

    def issues(self, limit: int = SHOWN_ISSUES) -> dict[str, Any]:
        """Every dropped row counted, the first `limit` named: for run_summary.json."""
        return {"count": len(self.problems), "first": self.problems[:limit]}

    def listing(self) -> str:
        """The first rows, one per line, then how many more."""
        more = len(self.problems) - SHOWN_ISSUES
        return "\n  ".join(self.problems[:SHOWN_ISSUES]) + (f"\n  ... and {more} more" if more > 0 else "")

    def log(self, logger: logging.Logger) -> None:
        for problem in self.problems[:SHOWN_ISSUES]:
            logger.warning("dropped %s", problem)
        if len(self.problems) > SHOWN_ISSUES:
            logger.warning("... and %d more dropped rows", len(self.problems) - SHOWN_ISSUES)


@dataclass
class LoadReport:
    """What loading kept and dropped, with a reason and place for every dropped row."""

    kept: int = 0
    problems: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    places: list[str] = field(default_factory=list)  # file:line of every kept row, in order

    def drop(self, where: str, reason: str) -> None:
        self.problems.append(f"{where}: {reason}")
        self.reasons[reason.split(":")[0]] += 1

    def issues(self, limit: int = SHOWN_ISSUES) -> dict[str, Any]:
        """Every dropped row counted, the first `limit` named as file:line: for logs and run_summary.json."""
        return DroppedRows(self.problems).issues(limit)

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


def data_files(path: Path) -> list[Path]:
    """A data file, or every data file (sorted, recursively) in a folder such as a SageMaker channel."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"data path does not exist: {path}")
    named = sorted(p for p in path.rglob("*") if p.suffix in DATA_SUFFIXES)
    broken = [p for p in named if p.is_symlink() and not p.exists()]
    if broken:  # data that was meant to be there: never skip it silently
        raise DataError(f"{broken[0]} is a symbolic link to {broken[0].readlink()}, which does not exist")
    files = [p for p in named if p.is_file()]
    if not files:
        raise DataError(f"no {'/'.join(DATA_SUFFIXES)} files in {path}")
    return files


def parse_json(text: str | bytes) -> Any:
    """One JSON text; every way it can be unusable is a ValueError saying why, never a crash.

    Bytes must be UTF-8 (never silently replaced); a leading byte-order mark is allowed. Nesting past the
    interpreter's recursion limit and integers past its digit limit are refused here, row by row.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"invalid UTF-8: byte 0x{text[err.start]:02x} at column {err.start + 1}"
            ) from err
    try:
        return json.loads(text.removeprefix(BOM))
    except json.JSONDecodeError as err:
        raise ValueError(f"malformed JSON line: {err.msg}") from err
    except RecursionError as err:
        raise ValueError("JSON nested too deeply") from err
    except ValueError as err:  # the integer digit limit (sys.get_int_max_str_digits)
        raise ValueError(f"JSON number too long: {str(err).partition(';')[0]}") from err


def json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """(file:line, row) for every non-blank line of a JSON Lines file; a row that cannot be read is a
    ValueError in place of the row, so one bad line costs that line only."""
    try:
        content = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a JSON Lines file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read it ({err.strerror})") from err
    # Split on "\n" only: str.splitlines() also breaks at U+2028 and friends, which JSON strings may hold.
    for lineno, line in enumerate(content.split(b"\n"), 1):
        if line.strip():
            try:
                yield f"{path}:{lineno}", parse_json(line)
            except ValueError as err:
                yield f"{path}:{lineno}", err


def _raw_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(place, row) pairs from one file; a line that cannot be read comes as its ValueError."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as err:  # pyarrow raises several types for a broken file
            raise DataError(f"{path}: not a readable Parquet file ({err})") from err
        yield from ((f"{path}:row {i + 1}", row) for i, row in enumerate(table.to_pylist()))
        return
    content = path.read_bytes() if path.suffix == ".json" else b""
    if content.lstrip(BOM.encode() + b" \t\r\n").startswith(b"["):
        try:
            rows = parse_json(content)
        except ValueError as err:
            raise DataError(f"{path}:{_error_line(content, err)}: not usable JSON ({err})") from err
        yield from ((f"{path}:item {i + 1}", row) for i, row in enumerate(rows))
        return
    yield from json_lines(path)


def _error_line(content: bytes, err: ValueError) -> int:
    """The line a whole-file JSON error is on: JSON's own line, else the line of the first bad byte."""
    cause = err.__cause__
    if isinstance(cause, json.JSONDecodeError):
        return cause.lineno
    if isinstance(cause, UnicodeDecodeError):
        return content.count(b"\n", 0, cause.start) + 1
    return 1


@functools.cache
def packaged_gsm8k(split: str) -> Path:
    """The shipped GSM8K split, checked against SHA256SUMS first: a damaged copy must not train."""
    sums = dict(
        reversed(line.split()) for line in (PACKAGED_GSM8K_DIR / "SHA256SUMS").read_text().splitlines()
    )
    name = f"{split}.jsonl"
    if name not in sums:
        raise DataError(
            f"{PACKAGED_GSM8K} has the splits {', '.join(sorted(Path(n).stem for n in sums))}, not {split!r}"
        )
    path = PACKAGED_GSM8K_DIR / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    if digest != sums[name]:
        raise DataError(
            f"{path} does not match its SHA256SUMS entry ({digest}): reinstall grpo-rlvr to restore GSM8K"
        )
    return path


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
        raw: Iterable[tuple[str, Any]] = _raw_rows(packaged_gsm8k(split))
    elif is_local_path(source):
        raw = (pair for f in data_files(local_path(source)) for pair in _raw_rows(f))
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


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows as JSON lines, creating the folder (a channel ready to upload)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
