"""The recipe's own sections (data, rewards, run), `RunConfig` that holds them with TRL's two, and
`ConfigError`; the checks each value needs on its own (numbers finite and in range, shot counts, mappings).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from grpo_rlvr.data import PACKAGED_GSM8K
from grpo_rlvr.prompt_format import DEFAULT, MAX_NEW_TOKENS, MAX_SHOTS, PromptFormat
from grpo_rlvr.redact import Redactor

if TYPE_CHECKING:
    from trl import GRPOConfig, ModelConfig

INT64_MAX = 2**63 - 1  # torch and the schedulers hold counts in 64 bits
# Bounds the libraries leave unchecked, each (test, what it says). Booleans never reach these.
_ABOVE_0 = (lambda v: v > 0, "greater than 0")
_AT_LEAST_0 = (lambda v: v >= 0, "at least 0")
_AT_LEAST_1 = (lambda v: v >= 1, "at least 1")
_BELOW_1 = (lambda v: 0 <= v < 1, "in [0, 1)")
_UP_TO_1 = (lambda v: 0 < v <= 1, "in (0, 1]")
_POSITIVE = ("learning_rate", "num_train_epochs", "temperature", "repetition_penalty", "adam_epsilon")
_NON_NEGATIVE = ("beta", "epsilon", "epsilon_high", "weight_decay", "max_grad_norm", "warmup_steps", "top_k")
_COUNTS = (
    "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "lora_r",
    "num_iterations", "max_completion_length", "save_total_limit", "steps_per_generation",
    "generation_batch_size",
)  # fmt: skip
RANGES = {
    **dict.fromkeys((*_POSITIVE, "lora_alpha"), _ABOVE_0),
    **dict.fromkeys((*_NON_NEGATIVE, "min_p"), _AT_LEAST_0),
    **dict.fromkeys(_COUNTS, _AT_LEAST_1),
    **dict.fromkeys(("adam_beta1", "adam_beta2", "lora_dropout"), _BELOW_1),
    **dict.fromkeys(("top_p", "vllm_gpu_memory_utilization"), _UP_TO_1),
}


class ConfigError(ValueError):
    """A recipe or override that cannot run; `key` names the setting to fix (None: the recipe itself).

    `problems` holds every (key, message) found at once; the first names `key`."""

    def __init__(self, key: str | None, message: str, more: Sequence[tuple[str, str]] = ()) -> None:
        self.problems = [(key, message), *more]
        lines = [f"{k}: {m}" if k else m for k, m in self.problems]
        if len(lines) == 1:
            super().__init__(lines[0])
        else:
            super().__init__(f"{len(lines)} settings to fix:\n" + "\n".join(f"  {line}" for line in lines))
        self.key = key


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest known name, else nothing: every "unknown" message ends so."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_shots(key: str, shots: Iterable[int], given: object) -> None:
    """The default prompt format's range of shot counts, as a ConfigError naming the key."""
    try:
        DEFAULT.check_shots(shots, given)
    except ValueError as err:
        raise ConfigError(key, str(err)) from None


def _json_mapping(key: str, value: dict | str | None) -> dict:
    """A mapping setting, given as a mapping (recipe) or as JSON text (a command line)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(key, f"not a JSON object: {err.msg}") from err
    if value is not None and not isinstance(value, dict):
        raise ConfigError(key, f"must be a mapping, got {value!r}")
    return value or {}


@dataclass(frozen=True)
class DataArguments:
    """Where the questions come from and how they become prompts."""

    dataset_path: str = field(
        default=PACKAGED_GSM8K,
        metadata={"help": f"{PACKAGED_GSM8K} (shipped), a hub id, or a JSONL/JSON/Parquet file or folder"},
    )
    dataset_config: str = field(default="main", metadata={"help": "hub dataset config"})
    dataset_split: str = field(default="train", metadata={"help": "hub split for training"})
    val_dataset_path: str | None = field(
        default=None, metadata={"help": "validation data (else val_fraction)"}
    )
    val_dataset_split: str = field(default="test", metadata={"help": "hub split for validation"})
    val_fraction: float = field(default=0.0, metadata={"help": "share of the training rows held out"})
    num_shots: int = field(
        default=8, metadata={"help": f"worked examples before each question, 0..{MAX_SHOTS}"}
    )
    max_prompt_tokens: int = field(
        default=1536, metadata={"help": "longer prompts are never cut: see policy"}
    )
    prompt_length_policy: Literal["drop", "fail"] = field(
        default="drop", metadata={"help": "drop over-long prompts (counted) or fail the run"}
    )
    end_tokens: list[str] | None = field(
        default=None,
        metadata={"help": "tokens that also end a completion, e.g. [<|im_end|>] with the chat format"},
    )
    stop_at_answer: bool = field(
        default=True,
        metadata={
            "help": "end each completion where an invented next `Question:` begins, as evaluation does"
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "use only the first N training rows"}
    )
    max_val_samples: int | None = field(
        default=None, metadata={"help": "use only the first N validation rows"}
    )
    prompt_format: dict | str | None = field(
        default=None,
        metadata={
            "help": "prompt template fields over the default: question_label, solution_label, "
            "solution_prefix, answer_line, exemplars, chat (JSON on the command line)"
        },
    )

    def __post_init__(self) -> None:
        # The one normalisation, made while the object is built (frozen: nothing changes it afterwards).
        object.__setattr__(self, "prompt_format", _json_mapping("prompt_format", self.prompt_format) or None)
        _check_shots("num_shots", [self.num_shots], self.num_shots)
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("val_fraction", f"must be in [0, 1), got {self.val_fraction}")
        for key in ("max_prompt_tokens", "max_train_samples", "max_val_samples"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(key, f"must be at least 1, got {value}")


@dataclass(frozen=True)
class RewardArguments:
    """Which registered rewards score completions; weights are GRPOConfig's own `reward_weights`."""

    rewards: list[str] = field(
        default_factory=lambda: ["gsm8k_format", "gsm8k_correctness"],
        metadata={"help": "reward registry names"},
    )
    reward_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "per-reward options, {name: {option: value}} (JSON on the command line)"},
    )
    reward_module: str | None = field(default=None, metadata={"help": "a Python file that registers rewards"})

    def __post_init__(self) -> None:
        kwargs = _json_mapping("reward_kwargs", self.reward_kwargs)
        object.__setattr__(self, "reward_kwargs", kwargs or None)
        check_number("reward_kwargs", kwargs)  # JSON text reaches the dict only here
        if not all(isinstance(v, dict) for v in kwargs.values()):
            raise ConfigError(
                "reward_kwargs", "must map reward names to option mappings, e.g. {name: {k: v}}"
            )


@dataclass(frozen=True)
class RunArguments:
    """Where results go. GRPOConfig's `output_dir` holds the checkpoints."""

    model_dir: str = field(default="outputs/model", metadata={"help": "final adapter + merged model"})
    summary_dir: str = field(
        default="outputs/summary", metadata={"help": "run_summary.json and eval outputs"}
    )
    merge_adapter: bool = field(
        default=True, metadata={"help": "also write the adapter merged into the base"}
    )
    eval_at_end: bool = field(
        default=False,
        metadata={"help": "after saving, GSM8K accuracy of the model on the validation rows (as evaluate)"},
    )
    eval_shots: list[int] | None = field(
        default=None, metadata={"help": "shot counts for eval_at_end (default: [num_shots])"}
    )
    eval_max_new_tokens: int = field(
        default=MAX_NEW_TOKENS, metadata={"help": "greedy tokens per answer in eval_at_end"}
    )
    eval_limit: int | None = field(
        default=None, metadata={"help": "eval_at_end on the first N validation rows only"}
    )

    def __post_init__(self) -> None:
        _check_shots("eval_shots", self.eval_shots or (), self.eval_shots)
        for key in ("eval_max_new_tokens", "eval_limit"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(key, f"must be at least 1, got {value}")


SECTIONS = {"data": DataArguments, "rewards": RewardArguments, "run": RunArguments}


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs, validated; never changed afterwards (its sections are frozen too,
    and training works on its own copy of `training`, TRL's GRPOConfig), so it is what a summary records."""

    recipe: str  # as given: a baked name or a path
    recipe_path: Path
    training: GRPOConfig
    model: ModelConfig
    data: DataArguments
    rewards: RewardArguments
    run: RunArguments
    reward_funcs: list = field(default_factory=list, repr=False)  # resolved from `rewards`
    prompt_format: PromptFormat = DEFAULT  # from `data.prompt_format`
    cpu_on_purpose: bool = False  # the recipe or an override says `use_cpu: true`: no GPU wanted

    def resolved(self) -> dict[str, Any]:
        """Plain JSON settings (anything else as its text), secrets masked at every depth (`redact`)."""
        plain = {
            "training": self.training.to_dict(),
            **{name: dataclasses.asdict(getattr(self, name)) for name in ("model", *SECTIONS)},
        }
        return Redactor.from_env(os.environ).value(json.loads(json.dumps(plain, default=str)))


def shown(value: Any, limit: int = 120) -> str:
    """A value for a message, cut short: an error must stay readable whatever was given."""
    text = str(value)
    return text if len(text) <= limit else f"{text[: limit - 30]}... ({len(text)} characters)"


def check_number(key: str, value: Any) -> None:
    """Every number finite and in int64, inside lists and mappings too; then the key's own range."""
    if isinstance(value, dict | list | tuple):
        for item in value.values() if isinstance(value, dict) else value:
            check_number(key, item)
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value}")
    if isinstance(value, int) and abs(value) > INT64_MAX:
        raise ConfigError(key, f"must be at most {INT64_MAX:.3g} in size, got {shown(value, 60)}")
    test, bound = RANGES.get(key, (None, ""))
    if test is not None and not test(value):
        raise ConfigError(key, f"must be {bound}, got {value}")
