"""The rows a run trains and evaluates on: validated, k-shot prompts, none cut; every dropped row named."""

from __future__ import annotations

import logging
from typing import Any

from grpo_rlvr import data as gsm8k_data
from grpo_rlvr.config.sections import ConfigError, DataArguments
from grpo_rlvr.datafiles import DroppedRows
from grpo_rlvr.humaneval import refuse_as_training_data
from grpo_rlvr.prompt_format import PromptFormat
from grpo_rlvr.rewards import required_columns

log = logging.getLogger(__name__)


def prepare_data(
    data: DataArguments, tokenizer: Any, seed: int, prompt_format: PromptFormat
) -> tuple[list, list, dict[str, Any]]:
    """Training and validation rows with prompts; over-long prompts dropped or failing, each named by its
    file:line in the log and the summary."""
    loaded: dict[str, str] = {}
    dropped_rows: dict[str, DroppedRows] = {}  # by part, as loading and then the prompt limit drop them
    prompts_dropped = {"train": 0, "val": 0}

    def load(part: str, source: str, split: str) -> list[tuple[dict[str, Any], str]]:
        examples, result = gsm8k_data.load_examples(source, hub_config=data.dataset_config, split=split)
        loaded[part], dropped_rows[part] = result.summary(), DroppedRows(list(result.problems))
        log.info("%s data %s: %s", part, source, loaded[part])
        dropped_rows[part].log(log)
        if part == "train":
            refuse_as_training_data(examples, result.places)
        return list(zip(examples, result.places, strict=True))

    rows = load("train", data.dataset_path, data.dataset_split)
    if data.val_dataset_path:
        val = load("val", data.val_dataset_path, data.val_dataset_split)
    else:
        rows, val = gsm8k_data.split_train_val(rows, data.val_fraction, seed)
    rows, val = rows[: data.max_train_samples], val[: data.max_val_samples]

    def with_prompts(part: str, placed: list[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
        if not placed:
            return []
        prompted = gsm8k_data.add_prompts([e for e, _ in placed], data.num_shots, prompt_format)
        kept, dropped = gsm8k_data.enforce_prompt_limit(
            prompted, tokenizer, data.max_prompt_tokens, data.prompt_length_policy, [p for _, p in placed]
        )
        prompts_dropped[part] = len(dropped)
        if dropped:
            DroppedRows(dropped).log(log)
            dropped_rows.setdefault(part, DroppedRows()).problems.extend(dropped)
        return kept

    train_rows, val_rows = with_prompts("train", rows), with_prompts("val", val)
    return (
        train_rows,
        val_rows,
        {
            "loaded": loaded,
            "issues": {part: drops.issues() for part, drops in dropped_rows.items()},
            "train_rows": len(train_rows),
            "val_rows": len(val_rows),
            "prompts_dropped": prompts_dropped,
        },
    )


def check_reward_columns(funcs: list, rows: list[dict[str, Any]]) -> None:
    """Every column a reward reads must be in every row, or the run fails before the model loads."""
    for fn in funcs:
        missing = sorted({c for c in required_columns(fn) for row in rows if c not in row})
        if missing:
            raise ConfigError(
                "rewards",
                f"reward {fn.__name__} reads column(s) {missing}, missing from the data: "
                "add them to the dataset or choose other rewards",
            )


def evaluation_rows(val_rows: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """The validation rows `eval_at_end` grades: GSM8K rows (question + gold answer), first `limit`.

    The training prompt is left out: `evaluate_examples` builds its own for every shot count.
    """
    if not val_rows:
        raise ConfigError("eval_at_end", "no validation rows left to evaluate (none loaded, or all dropped)")
    unusable = [i for i, row in enumerate(val_rows) if not {"question", "final_answer"} <= row.keys()]
    if unusable:
        raise ConfigError(
            "eval_at_end",
            f"needs GSM8K validation rows (question + final_answer); {len(unusable)} of {len(val_rows)} "
            f"lack them (first: validation row {unusable[0] + 1})",
        )
    return [{k: v for k, v in row.items() if k != "prompt"} for row in val_rows[:limit]]
