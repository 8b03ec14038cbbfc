"""Recipes: a flat YAML file plus overrides -> one validated `RunConfig`, before any model loads.

A recipe's keys are TRL's own `GRPOConfig` and `ModelConfig` fields plus this module's data, reward and
run dataclasses, like open-r1's recipes. Every key, type, choice and range is first checked against the
recipe schema (`recipe_schema.py`: no TRL import, every problem in one message); then every value goes
through one `HfArgumentParser` over all five dataclasses as a command line (`--key=value`), exactly as
TRL's scripts read it. A key no dataclass owns is an error, never silently ignored. Overrides come as typed
values (SageMaker hyperparameters, decoded by the launcher) or as `key=value` strings, read by
`overrides.parse_overrides` (YAML values, so `rewards=[a,b]` is a list). Recipes and overrides are read
with YAML 1.2 scalars (only true/false are booleans): `save_strategy: no` is the string "no", as TRL
expects.

`report_to` takes one integration or a list (`report_to: [mlflow, tensorboard]`). With
$MLFLOW_TRACKING_URI set, mlflow joins whatever the recipe reports to, unless the recipe or an override
says `report_to: none` explicitly: then nothing is reported, MLflow included.

Checks that need no model run here too: the model path, the rewards and their options (after loading a
user reward module), the prompt format, the group size against the batch, the shot count, `report_to`
integrations (known and installed) and evaluation without validation rows; each
failure is a `ConfigError` naming the key to fix. What needs the data (reward columns, prompt lengths)
is checked by `training.grpo.run` before it loads the model.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from grpo_rlvr import cuda, gpu_rules
from grpo_rlvr.data import PACKAGED_GSM8K
from grpo_rlvr.files import is_local_path, local_path
from grpo_rlvr.overrides import NotKeyValue, RecipeLoader, parse_overrides
from grpo_rlvr.prompt_format import DEFAULT, MAX_NEW_TOKENS, MAX_SHOTS, PromptFormat
from grpo_rlvr.recipe_schema import LIST_KEYS, check_values, schema
from grpo_rlvr.redact import Redactor
from grpo_rlvr.tiny import BUILTIN_PREFIX, BUILTINS, builtin_names

if TYPE_CHECKING:
    from trl import GRPOConfig, ModelConfig

    from grpo_rlvr.cuda import CudaStatus

RECIPES_ENV = "GRPO_RLVR_RECIPES"  # the image points this at its baked recipes folder
REPO_RECIPES = Path(__file__).resolve().parents[2] / "recipes"
DEFAULT_OUTPUT_DIR = "outputs/checkpoints"
MLFLOW_ENV = "MLFLOW_TRACKING_URI"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# Integrations transformers' availability list leaves out: only the trainer can tell whether they work.
UNLISTED_INTEGRATIONS = ("flyte", "kubeflow")
NEEDS_VAL = "set val_dataset_path or val_fraction"
NO_REPORTING = (None, "none", [], ["none"])  # explicit `report_to` values that turn every reporter off
INT64_MAX = 2**63 - 1  # torch and the schedulers hold counts in 64 bits
_BAKED_NAME = re.compile(r"[\w-][\w.-]*")  # a baked recipe is looked up by a plain name, never a path
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
        _check_number("reward_kwargs", kwargs)  # JSON text reaches the dict only here
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
        metadata={"help": "after saving, GSM8K accuracy of the model on the validation rows (evaluate.py)"},
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


def recipe_folders() -> list[Path]:
    """Where baked recipes (and `accelerate/` configs) are looked up: $GRPO_RLVR_RECIPES, then recipes/."""
    return [*([Path(os.environ[RECIPES_ENV])] if os.environ.get(RECIPES_ENV) else []), REPO_RECIPES]


def find_recipe(recipe: str | Path) -> Path:
    """A recipe file path, or a baked name looked up in `recipe_folders()`."""
    path = local_path(recipe)
    if local_path_exists("recipe", path) and path.is_file():
        return path
    folders = recipe_folders()
    if _BAKED_NAME.fullmatch(str(recipe)):
        for folder in folders:
            for candidate in (folder / f"{recipe}.yaml", folder / str(recipe)):
                if local_path_exists("recipe", candidate) and candidate.is_file():
                    return candidate
    names = sorted({p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.yaml")})
    raise ConfigError("recipe", f"no recipe file or baked recipe named {_shown(recipe)!r}; baked: {names}")


def local_path_exists(key: str, path: str | Path) -> bool:
    """Whether a local path exists; a name the file system cannot even look up is the key's error."""
    try:
        return local_path(path).exists()
    except OSError as err:  # a name too long (ENAMETOOLONG), or a component that is no folder
        raise ConfigError(key, f"{_shown(path)} is not a usable path: {err.strerror}") from err
    except ValueError as err:  # an embedded NUL byte
        raise ConfigError(key, f"{_shown(path)} is not a usable path: {err}") from err


def _shown(value: Any, limit: int = 120) -> str:
    """A value for a message, cut short: an error must stay readable whatever was given."""
    text = str(value)
    return text if len(text) <= limit else f"{text[: limit - 30]}... ({len(text)} characters)"


def read_recipe(path: Path) -> dict[str, Any]:
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=RecipeLoader) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError("recipe", f"{path} is not valid YAML: {err}") from err
    except (ValueError, RecursionError) as err:  # an integer past Python's digit limit; nesting too deep
        raise ConfigError("recipe", f"{path} holds a value too large or too deeply nested to read") from err
    if not isinstance(values, dict):
        raise ConfigError("recipe", f"{path} must be a flat mapping of keys to values")
    return values


def load_config(
    recipe: str | Path, overrides: Mapping[str, Any] | Sequence[str] = (), *, num_processes: int | None = None
) -> RunConfig:
    """Recipe + overrides -> RunConfig, or a ConfigError naming the key to fix.

    `num_processes` is the data-parallel world size the run will have (default: $WORLD_SIZE, else 1);
    a launcher validating before it starts N processes passes N, and gets a config for N processes
    that only those processes may train with.
    """
    path = find_recipe(recipe)
    try:
        values = {**read_recipe(path), **parse_overrides(overrides)}
    except NotKeyValue as err:
        raise ConfigError(None, f"override {err.item!r} is not key=value") from err
    values.setdefault("output_dir", DEFAULT_OUTPUT_DIR)
    reporting_off = "report_to" in values and values["report_to"] in NO_REPORTING
    if reporting_off:
        values["report_to"] = "none"
    cpu_on_purpose = values.get("use_cpu") is True
    num_processes = num_processes or int(os.environ.get("WORLD_SIZE", 1))
    _precheck(values, num_processes)  # every key, type and range at once, before TRL is imported
    _apply_cpu_defaults(values)
    training, model, data, rewards, run = _parse(values, num_processes)
    if os.environ.get(MLFLOW_ENV) and not reporting_off and "mlflow" not in training.report_to:
        training.report_to.append("mlflow")
    config = _validated(str(recipe), path, training, model, data, rewards, run)
    return dataclasses.replace(config, cpu_on_purpose=cpu_on_purpose)


def _apply_cpu_defaults(values: dict[str, Any]) -> None:
    """Without CUDA, validate as a CPU run in fp32 (TRL defaults bf16 on); explicit values are kept, except
    `tf32`: transformers refuses bf16 and tf32 on a host without a GPU, so a GPU recipe validates on a CPU
    host (a laptop writing a SageMaker job) this way. Whether it may TRAIN there is `check_device`'s
    question: only a recipe that asks for `use_cpu: true` itself does."""
    import torch

    if not torch.cuda.is_available():
        values.setdefault("use_cpu", True)
        values.setdefault("bf16", False)
        if values.get("tf32"):
            values["tf32"] = None


def check_device(config: RunConfig, status: CudaStatus | None = None) -> None:
    """A recipe that does not ask for the CPU trains on a GPU: where CUDA is not usable, refuse, saying
    what was found, before anything is downloaded or loaded (never a silent CPU run)."""
    if config.cpu_on_purpose:
        return
    problem = (status or cuda.probe()).problem
    if problem is not None:
        found = f"this recipe trains on a GPU, but CUDA is not usable here: {problem}"
        raise ConfigError("use_cpu", f"{found}; {cuda.CPU_ON_PURPOSE}")


def _precheck(values: dict[str, Any], num_processes: int) -> None:
    """Every key, type, choice, null and range against the recipe schema, the group size, and the model and
    data paths (a local one must exist): all the problems in one ConfigError. Needs no TRL import, so a
    mistake is reported in a second or two."""
    read, problems = check_values(values, schema(SECTIONS.values()), did_you_mean)
    for key in values:
        if not any(k == key for k, _ in problems):
            try:
                _check_number(key, read[key])
            except ConfigError as err:
                problems.append((key, str(err).removeprefix(f"{key}: ")))
    checks = [
        (_GROUP_KEYS, partial(_check_group_size, read, num_processes)),
        (("model_name_or_path",), partial(_check_model_path, read.get("model_name_or_path"))),
        *(
            ((key,), partial(_check_data_path, key, read.get(key)))
            for key in ("dataset_path", "val_dataset_path")
        ),
    ]  # each run where its keys' values are readable: a missing path is found without importing TRL too
    for keys, check in checks:
        if not any(k in keys for k, _ in problems):
            try:
                check()
            except ConfigError as err:
                problems.append((err.key, str(err).removeprefix(f"{err.key}: ")))
    if problems:
        order = list(values)  # as the recipe and the overrides give them
        problems.sort(key=lambda p: order.index(p[0]) if p[0] in order else len(order))
        raise ConfigError(*problems[0], more=problems[1:])


def _parse(
    values: dict[str, Any], num_processes: int
) -> tuple[GRPOConfig, ModelConfig, DataArguments, RewardArguments, RunArguments]:
    """One command line over all five dataclasses: argparse reads every value as TRL's scripts would
    (`_precheck` has already checked each one)."""
    from transformers import HfArgumentParser
    from trl import ModelConfig

    from grpo_rlvr.grpo_args import GRPOArgs

    class RecipeParser(HfArgumentParser):
        """argparse's errors raise a ConfigError naming the key, instead of printing usage and exiting."""

        def error(self, message: str) -> typing.NoReturn:
            found = re.search(r"argument --(\w+)", message)
            raise ConfigError(found[1] if found else None, _shown(message, 240))  # values may be huge

    classes = [GRPOArgs, ModelConfig, *SECTIONS.values()]
    parser = RecipeParser(classes, add_help=False, allow_abbrev=False)
    actions = {
        a.dest: a for a in parser._actions if a.option_strings and a.option_strings[0] == f"--{a.dest}"
    }
    for key in LIST_KEYS:
        actions[key].nargs = "+"
    hints = {name: hint for cls in classes for name, hint in typing.get_type_hints(cls).items()}

    argv, nulls = [], []
    for key, value in values.items():
        action = actions.get(key)
        if action is None:
            raise ConfigError(str(key), "unknown key" + did_you_mean(str(key), actions))
        if value is None:
            if type(None) not in typing.get_args(hints[key]):
                raise ConfigError(key, "may not be null")
            nulls.append(key)
        elif action.nargs in ("+", "*"):
            argv += [f"--{key}", *map(_arg, value if isinstance(value, list | tuple) else [value])]
        elif isinstance(value, list | tuple):
            raise ConfigError(key, f"takes one value, got a list {value!r}")
        else:
            argv.append(f"--{key}={_arg(value)}")
    namespace, unused = parser.parse_known_args(argv)
    if unused:
        raise ConfigError(None, f"could not read {unused}")
    for key in nulls:
        setattr(namespace, key, None)
    if num_processes != int(os.environ.get("WORLD_SIZE", 1)):
        # A launcher validating for N processes from its single one: TRL's own batch checks must count N.
        planned = property(lambda _: num_processes)
        classes[0] = type(
            "PlannedGRPOConfig", (GRPOArgs,), {"world_size": planned, "__doc__": GRPOArgs.__doc__}
        )
    objects = []
    for cls in classes:
        inputs = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if f.init}
        try:
            objects.append(cls(**inputs))
        except ConfigError:
            raise
        except (ValueError, TypeError) as err:  # TRL's and transformers' own checks
            raise ConfigError(None, str(err)) from err
    return tuple(objects)


def _check_number(key: str, value: Any) -> None:
    """Every number finite and in int64, inside lists and mappings too; then the key's own range."""
    if isinstance(value, dict | list | tuple):
        for item in value.values() if isinstance(value, dict) else value:
            _check_number(key, item)
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value}")
    if isinstance(value, int) and abs(value) > INT64_MAX:
        raise ConfigError(key, f"must be at most {INT64_MAX:.3g} in size, got {_shown(value, 60)}")
    test, bound = RANGES.get(key, (None, ""))
    if test is not None and not test(value):
        raise ConfigError(key, f"must be {bound}, got {value}")


def _arg(value: Any) -> str:
    """One value as the command-line text argparse reads back (bools as true/false, dicts as JSON)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


_GROUP_KEYS = (
    "per_device_train_batch_size", "generation_batch_size", "steps_per_generation",
    "gradient_accumulation_steps", "num_generations",
)  # fmt: skip


def _check_group_size(read: Mapping[str, Any], num_processes: int) -> None:
    """TRL's rule, with the numbers: the generation batch must hold whole groups of num_generations."""
    per_device, generation_batch = read["per_device_train_batch_size"], read["generation_batch_size"]
    per_step = per_device * num_processes
    if generation_batch is not None and read["steps_per_generation"] is None:
        batch, how = generation_batch, f"generation_batch_size={generation_batch}"
    else:
        steps = read["steps_per_generation"] or read["gradient_accumulation_steps"]
        batch = per_step * steps
        how = (
            f"per_device_train_batch_size={per_device} x processes={num_processes} x "
            f"steps_per_generation={steps} (defaults to gradient_accumulation_steps) = {batch}"
        )
    groups = read["num_generations"]
    if groups is None or groups < 2 or batch % groups:
        fits = [g for g in range(2, batch + 1) if batch % g == 0]
        raise ConfigError(
            "num_generations",
            f"{groups} does not divide the generation batch {how}: use one of {fits} or change the batch",
        )


def _validated(
    recipe: str,
    path: Path,
    training: GRPOConfig,
    model: ModelConfig,
    data: DataArguments,
    rewards: RewardArguments,
    run: RunArguments,
) -> RunConfig:
    """The checks that need more than one field, or the registry, or the file system; then the config,
    with every derived value (prompt format, reward functions, default eval shots) computed here, once."""
    if (model.load_in_4bit or model.load_in_8bit) and not model.use_peft:
        raise ConfigError("use_peft", "a 4/8-bit base cannot be trained directly: set use_peft: true (QLoRA)")
    if problem := gpu_rules.vllm_problem(model, training):
        raise ConfigError(*problem)
    chosen_format = prompt_format(data)
    funcs = reward_functions(rewards, chosen_format)
    has_val = bool(data.val_dataset_path or data.val_fraction)
    if run.eval_at_end and not has_val:
        raise ConfigError("eval_at_end", f"needs validation rows: {NEEDS_VAL}")
    if training.eval_strategy != "no" and not has_val:
        raise ConfigError("eval_strategy", f"needs validation rows: {NEEDS_VAL}, or set it to no")
    _check_report_to(training.report_to)
    if run.eval_shots is None:
        run = dataclasses.replace(run, eval_shots=[data.num_shots])
    if training.reward_weights is not None and len(training.reward_weights) != len(funcs):
        raise ConfigError(
            "reward_weights",
            f"{len(training.reward_weights)} weights for {len(funcs)} rewards {rewards.rewards}",
        )
    if training.use_vllm and training.vllm_max_model_length is not None:
        needed = data.max_prompt_tokens + (training.max_completion_length or 0)
        if training.vllm_max_model_length < needed:
            raise ConfigError(
                "vllm_max_model_length",
                f"{training.vllm_max_model_length} < max_prompt_tokens + "
                f"max_completion_length = {needed}: vLLM would reject the longest prompts",
            )
    return RunConfig(recipe, path, training, model, data, rewards, run, funcs, chosen_format)


def _check_report_to(report_to: list[str]) -> None:
    """Every integration named is one transformers knows and is installed here (the trainer would fail
    on it only after the model has loaded)."""
    from transformers.integrations import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    installed = get_available_reporting_integrations()
    for name in report_to:
        if name not in INTEGRATION_TO_CALLBACK:
            known = did_you_mean(name, INTEGRATION_TO_CALLBACK)
            raise ConfigError("report_to", f"unknown integration {name!r}{known}")
        if name not in installed and name not in UNLISTED_INTEGRATIONS:
            raise ConfigError(
                "report_to",
                f"{name} is not installed in this environment: install it, or remove it from report_to "
                f"(installed: {', '.join(installed) or 'none'})",
            )


def _check_model_path(name: str | None) -> None:
    if not name:
        raise ConfigError(
            "model_name_or_path",
            f"required: a hub id (org/name), a local folder or a built-in ({builtin_names()})",
        )
    if name.startswith(BUILTIN_PREFIX):
        if name.removeprefix(BUILTIN_PREFIX) not in BUILTINS:
            raise ConfigError(
                "model_name_or_path", f"unknown built-in {name!r}; available: {builtin_names()}"
            )
        return
    if local_path_exists("model_name_or_path", name):
        if not (local_path(name) / "config.json").is_file():
            raise ConfigError(
                "model_name_or_path", f"{_shown(name)} has no config.json: not a transformers model folder"
            )
        return
    _check_hub_id("model_name_or_path", name, f"local path {_shown(name)} does not exist")


def _check_data_path(key: str, source: str | None) -> None:
    if source and source != PACKAGED_GSM8K and not local_path_exists(key, source):
        _check_hub_id(key, source, f"{_shown(source)} does not exist")


def _check_hub_id(key: str, name: str, missing: str) -> None:
    """A name that is no local path must be a valid hub id (org/name, at most 96 characters)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if is_local_path(name) or not _HUB_ID.fullmatch(name):
        raise ConfigError(key, f"{missing} (a hub id looks like org/name)")
    try:
        validate_repo_id(name)
    except HFValidationError as err:
        raise ConfigError(
            key, f"{missing}, and it is no valid hub id (org/name: at most 96 letters, digits, '-', '_', '.')"
        ) from err


def prompt_format(data: DataArguments) -> PromptFormat:
    """The recipe's `prompt_format` over the default, checked, and read back by the extractor."""
    from grpo_rlvr.answers import extract

    settings = data.prompt_format or {}
    fields = [f.name for f in dataclasses.fields(PromptFormat)]
    for name in settings:
        if name not in fields:
            raise ConfigError("prompt_format", f"unknown field {name!r}" + did_you_mean(name, fields))
    try:
        chosen = PromptFormat.from_settings(settings)
        chosen.check()
    except (TypeError, ValueError) as err:
        raise ConfigError("prompt_format", str(err)) from err
    probe = chosen.answer_line.format(1234)
    answer = extract(probe, chosen.canonical)
    if answer.value != 1234 or not answer.canonical:
        raise ConfigError("prompt_format", f"answer_line: the extractor cannot read the number in {probe!r}")
    try:
        chosen.check_shots([data.num_shots], data.num_shots)
    except ValueError:
        raise ConfigError(
            "num_shots", f"{data.num_shots} shots but prompt_format has {len(chosen.exemplars)} exemplars"
        ) from None
    return chosen


_LOADED_REWARD_MODULES: set[Path] = set()  # a module registers its rewards once per process


def reward_functions(rewards: RewardArguments, prompt_format: PromptFormat = DEFAULT) -> list:
    """Registry names -> reward callables, after a user reward module (if any) has registered its own;
    every `reward_kwargs` option must be one the reward takes."""
    from grpo_rlvr import rewards as registry
    from grpo_rlvr.rewards.user import load_reward_module

    module = None
    if rewards.reward_module:
        local_path_exists("reward_module", rewards.reward_module)  # a name too long is a setting to fix
        module = Path(rewards.reward_module).resolve()
    if module and module not in _LOADED_REWARD_MODULES:
        try:
            load_reward_module(module)
        except ValueError as err:  # RewardModuleError names the file and the cause
            raise ConfigError("reward_module", str(err)) from err
        _LOADED_REWARD_MODULES.add(module)
    try:
        funcs = registry.resolve(rewards.rewards, rewards.reward_kwargs, prompt_format)
    except ValueError as err:
        raise ConfigError("rewards", str(err)) from err
    for name, options in (rewards.reward_kwargs or {}).items():
        known = registry.reward_options(registry.REGISTRY[name])
        for option in options:
            if option not in known:
                raise ConfigError(
                    "reward_kwargs",
                    f"unknown option {option!r} of reward {name!r}"
                    + did_you_mean(option, known)
                    + f"; its options: {known or 'none'}",
                )
    return funcs
