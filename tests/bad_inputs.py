"""A fake /opt/ml tree for the launcher tests, and the catalogue of bad inputs each must be refused with.

`make_tree` writes what SageMaker would: the three config JSONs (every hyperparameter a string) and a
`train` channel of real GSM8K rows. Each catalogue entry breaks one thing and names the substring the
failure file must hold and the exit code (2: an input to fix).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from grpo_rlvr.data import packaged_gsm8k

GSM8K_TRAIN = packaged_gsm8k("train")
SMOKE_HYPERPARAMETERS = {"recipe": "smoke-cpu", "max_steps": "2", "save_steps": "100"}


def write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")


def write_rows(folder: Path, rows: int = 16) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with GSM8K_TRAIN.open(encoding="utf-8") as f:
        (folder / "data.jsonl").write_text("".join(islice(f, rows)), encoding="utf-8")


def make_tree(
    base: Path,
    hyperparameters: dict[str, str] | None = None,
    *,
    current_host: str = "algo-1",
    hosts: tuple[str, ...] = ("algo-1",),
    val: bool = False,
) -> Path:
    """A SageMaker-shaped tree under `base`, as `docker run IMAGE train` would see it in /opt/ml."""
    config = base / "input" / "config"
    write_json(
        config / "hyperparameters.json", SMOKE_HYPERPARAMETERS if hyperparameters is None else hyperparameters
    )
    write_json(
        config / "resourceconfig.json",
        {"current_host": current_host, "hosts": list(hosts), "network_interface_name": "ethwe"},
    )
    channels = ["train", "val"] if val else ["train"]
    write_json(config / "inputdataconfig.json", {c: {"TrainingInputMode": "File"} for c in channels})
    for channel in channels:
        write_rows(base / "input" / "data" / channel)
    return base


def _edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(base: Path) -> None:
        path = base / "input" / "config" / name
        write_json(path, change(json.loads(path.read_text())))

    return edit


def _hyperparameters(**values: str) -> Callable[[Path], None]:
    return _edit_json("hyperparameters.json", lambda hp: {**hp, **values})


def _write(relative: str, text: str) -> Callable[[Path], None]:
    def write(base: Path) -> None:
        (base / relative).parent.mkdir(parents=True, exist_ok=True)
        (base / relative).write_text(text, encoding="utf-8")

    return write


def _empty_channel(channel: str) -> Callable[[Path], None]:
    def empty(base: Path) -> None:
        folder = base / "input" / "data" / channel
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    return empty


def _remove(relative: str) -> Callable[[Path], None]:
    return lambda base: shutil.rmtree(base / relative)


@dataclass(frozen=True)
class BadInput:
    name: str
    breaks: Callable[[Path], None]
    message: str  # a substring of the failure file's text
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()


_CONFIG = "input/config/"
_TWO_HOSTS = _edit_json("resourceconfig.json", lambda rc: {**rc, "hosts": ["algo-1", "algo-2"]})


def _no_train_channel_declared(base: Path) -> None:
    _remove("input/data/train")(base)
    _write(_CONFIG + "inputdataconfig.json", "{}")(base)


def _write_bytes(relative: str, content: bytes) -> Callable[[Path], None]:
    def write(base: Path) -> None:
        (base / relative).write_bytes(content)

    return write


def _dangling_link(base: Path) -> None:
    (base / "input/data/train/more.jsonl").symlink_to(base / "input/data/elsewhere.jsonl")


def _one_long_prompt_refused(base: Path) -> None:
    """Row 17 (after the 16 GSM8K rows) is too long to prompt, under `prompt_length_policy: fail`."""
    with (base / "input/data/train/data.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"question": "How many? " * 1000, "answer": "#### 1"}) + "\n")
    _hyperparameters(num_shots="0", prompt_length_policy="fail")(base)


def _link_loop(base: Path) -> None:
    (base / "input/data/train/sub").mkdir()
    (base / "input/data/train/sub/up").symlink_to(base / "input/data/train", target_is_directory=True)


def _only_hidden_data(base: Path) -> None:
    _empty_channel("train")(base)
    write_rows(base / "input/data/train/.ipynb_checkpoints")


def _only_a_readme(base: Path) -> None:
    _empty_channel("train")(base)
    _write("input/data/train/README.txt", "rows are elsewhere")(base)


def _checkpoint(step: int, damaged: bool = False, **settings: object) -> Callable[[Path], Path]:
    """A complete checkpoint in the tree, written with the smoke recipe's weight settings but `settings`;
    `damaged`: one byte of its weights changed since (the size kept)."""

    def write(base: Path) -> Path:
        from grpo_rlvr.checkpoints import mark_complete, weight_settings
        from grpo_rlvr.config.loading import load_config

        folder = base / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"weights" * 64)
        mark_complete(folder, step, {**weight_settings(load_config("smoke-cpu").model), **settings})
        if damaged:
            (folder / "adapter_model.safetensors").write_bytes(b"Weights" + b"weights" * 63)
        return folder

    return write


def _resume_from(write: Callable[[Path], Path]) -> Callable[[Path], None]:
    return lambda base: _hyperparameters(resume_from_checkpoint=str(write(base)))(base)


CATALOGUE = [
    # the three config files
    BadInput(
        "hyperparameters_not_json",
        _write(_CONFIG + "hyperparameters.json", '{"recipe": "smoke-cpu",'),
        "hyperparameters.json: not valid JSON (line 1, column 24",
    ),
    BadInput(
        "resourceconfig_not_json",
        _write(_CONFIG + "resourceconfig.json", "{current_host: algo-1}"),
        "resourceconfig.json: not valid JSON",
    ),
    BadInput(
        "inputdataconfig_not_json",
        _write(_CONFIG + "inputdataconfig.json", '{"train": }'),
        "inputdataconfig.json: not valid JSON",
    ),
    BadInput(
        "hyperparameters_a_list",
        _write(_CONFIG + "hyperparameters.json", '["recipe", "smoke-cpu"]'),
        "hyperparameters.json: it must hold a JSON object, not list",
    ),
    BadInput(
        "hosts_empty",
        _edit_json("resourceconfig.json", lambda rc: {**rc, "hosts": []}),
        "`hosts` must be a non-empty list of host names",
    ),
    BadInput(
        "current_host_unknown",
        _edit_json("resourceconfig.json", lambda rc: {**rc, "current_host": "algo-3"}),
        "`current_host` 'algo-3' is not one of `hosts`",
    ),
    BadInput(
        "host_twice",
        _edit_json("resourceconfig.json", lambda rc: {**rc, "hosts": ["algo-1", "algo-1"]}),
        "`hosts` lists a host twice",
    ),
    # channels and data
    BadInput("train_channel_missing", _remove("input/data/train"), "channel `train` is declared in"),
    BadInput("train_channel_empty", _empty_channel("train"), "channel `train` is empty"),
    BadInput("train_channel_no_data_file", _only_a_readme, "channel `train` holds no data file"),
    BadInput("val_channel_empty", _empty_channel("val"), "channel `val` is empty"),
    BadInput(
        "pipe_mode",
        _edit_json("inputdataconfig.json", lambda c: {"train": {"TrainingInputMode": "Pipe"}}),
        "set channel `train` to TrainingInputMode File or FastFile, not Pipe",
    ),
    BadInput(
        "data_rows_unusable",
        _write("input/data/train/data.jsonl", '{"question": "no answer"}\nnot json\n'),
        "no usable rows in",
    ),
    # hyperparameters
    BadInput(
        "recipe_unknown",
        _hyperparameters(recipe="qwen9-gsm8k"),
        "recipe: no recipe file or baked recipe named 'qwen9-gsm8k'",
    ),
    BadInput(
        "recipe_unknown_from_env",
        _edit_json("hyperparameters.json", lambda hp: {"max_steps": "2"}),
        "no recipe file or baked recipe named 'nope'",
        env={"GRPO_RLVR_RECIPE": "nope"},
    ),
    BadInput(
        "key_unknown",
        _hyperparameters(lerning_rate="1e-5"),
        "lerning_rate: unknown key (did you mean 'learning_rate'?)",
    ),
    BadInput("value_not_a_number", _hyperparameters(learning_rate="fast"), "learning_rate"),
    BadInput(
        "list_for_a_scalar",
        _hyperparameters(num_generations="[2, 4]"),
        "num_generations: takes one value, got a list [2, 4]",
    ),
    BadInput(
        "value_out_of_range", _hyperparameters(num_shots="12"), "num_shots: must be between 0 and 8, got 12"
    ),
    BadInput(
        "group_size_vs_batch",
        _hyperparameters(num_generations="3"),
        "num_generations: 3 does not divide the generation batch",
    ),
    BadInput("reward_unknown", _hyperparameters(rewards='["gsm8k_correctness", "nope"]'), "rewards:"),
    BadInput(
        "reward_kwargs_not_a_mapping",
        _hyperparameters(reward_kwargs='{"gsm8k_format": 1}'),
        "reward_kwargs: must map reward names to option mappings",
    ),
    BadInput(
        "reward_option_misspelt",
        _hyperparameters(rewards='["keywords"]', reward_kwargs='{"keywords": {"max_repeat": 2}}'),
        "reward_kwargs: unknown option 'max_repeat' of reward 'keywords' (did you mean 'max_repeats'?)",
    ),
    BadInput(
        "contract_key_as_hyperparameter",
        _hyperparameters(dataset_path="/data/mine.jsonl"),
        "remove hyperparameter `dataset_path`: in this container it comes from the `train` channel",
    ),
    BadInput(
        "accelerate_config_unknown",
        _hyperparameters(accelerate_config="zero9"),
        "fix hyperparameter `accelerate_config`: no accelerate config 'zero9'",
    ),
    BadInput(
        "host_address_malformed",
        _TWO_HOSTS,
        "fix GRPO_RLVR_HOST_ADDRS: write host=address pairs",
        env={"GRPO_RLVR_HOST_ADDRS": "algo-1:127.0.0.1"},
    ),
    # hostile or careless values: non-finite and huge numbers, ranges, lengths, nesting, names
    BadInput(
        "learning_rate_2600_nines",
        _hyperparameters(learning_rate="9" * 2600),
        "learning_rate: must be a finite number, got inf",
    ),
    BadInput(
        "learning_rate_nan",
        _hyperparameters(learning_rate="NaN"),
        "learning_rate: must be a finite number, got nan",
    ),
    BadInput(
        "reward_kwargs_infinity",
        _hyperparameters(reward_kwargs='{"gsm8k_format": {"scale": Infinity}}'),
        "reward_kwargs: must be a finite number, got inf",
    ),
    BadInput(
        "max_steps_past_int64",
        _hyperparameters(max_steps="1" + "0" * 30),
        "max_steps: must be at most 9.22e+18",
    ),
    BadInput(
        "learning_rate_negative",
        _hyperparameters(learning_rate="-0.001"),
        "learning_rate: must be greater than 0",
    ),
    BadInput(
        "batch_size_zero",
        _hyperparameters(per_device_train_batch_size="0"),
        "per_device_train_batch_size: must be at least 1, got 0",
    ),
    BadInput(
        "lora_dropout_above_1",
        _hyperparameters(lora_dropout="1.5"),
        "lora_dropout: must be in [0, 1), got 1.5",
    ),
    BadInput(
        "number_nested_100000_deep",
        _hyperparameters(learning_rate="[" * 100_000),
        "learning_rate: must be a number, got '[[[[",
    ),
    BadInput(
        "recipe_2600_characters",
        _hyperparameters(recipe="r" * 2600),
        "recipe: rrrr",
    ),
    BadInput(
        "recipe_name_traversal",
        _hyperparameters(recipe="../recipes/smoke-cpu"),
        "no recipe file or baked recipe named '../recipes/smoke-cpu'",
    ),
    BadInput(
        "model_path_2600_characters",
        _hyperparameters(model_name_or_path="m" * 2600),
        "(2600 characters) is not a usable path: File name too long",
    ),
    BadInput(
        "hub_id_too_long",
        _hyperparameters(model_name_or_path="org/" + "m" * 200),
        "and it is no valid hub id",
    ),
    BadInput(
        "lora_targets_match_nothing",
        _hyperparameters(lora_target_modules='["q_proj", "attn_qkv"]'),
        "lora_target_modules: 'attn_qkv' matches no module of qwen2",
    ),
    BadInput(
        "hyperparameters_nested_200000_deep",
        _write(_CONFIG + "hyperparameters.json", '{"recipe": ' + "[" * 200_000 + "]" * 200_000 + "}"),
        "hyperparameters.json: it holds a value too large or too deeply nested to read",
    ),
    BadInput(
        "resourceconfig_5000_digit_number",
        _write(_CONFIG + "resourceconfig.json", '{"current_host": "algo-1", "n": ' + "9" * 5000 + "}"),
        "resourceconfig.json: it holds a value too large or too deeply nested to read",
    ),
    BadInput(
        "channel_name_traversal",
        _edit_json("inputdataconfig.json", lambda c: {**c, "../../model": {"TrainingInputMode": "File"}}),
        "rename channel '../../model'",
    ),
    BadInput(
        "channel_name_dots",
        _edit_json("inputdataconfig.json", lambda c: {**c, "..": {"TrainingInputMode": "File"}}),
        "rename channel '..'",
    ),
    BadInput("data_dangling_symlink", _dangling_link, "more.jsonl is a symbolic link to"),
    BadInput(
        "data_only_invalid_utf8",
        _write_bytes("input/data/train/data.jsonl", b'{"question": "\xff", "answer": "#### 1"}\n'),
        "data.jsonl:1: invalid UTF-8: byte 0xff at column 15",
    ),
    BadInput(
        "data_only_nested_too_deep",
        _write("input/data/train/data.jsonl", "[" * 200_000 + "\n"),
        "data.jsonl:1: JSON nested too deeply",
    ),
    BadInput("prompt_too_long_refused", _one_long_prompt_refused, "data.jsonl:17: prompt of"),
    # checkpoints: another recipe's, or changed since they were written
    BadInput(
        "checkpoint_of_another_lora_rank",
        _checkpoint(4, lora_r=64),
        "checkpoint-4 was written by a run with other weight settings (lora_r: 64 there, 8 here)",
    ),
    BadInput(
        "checkpoint_of_another_model",
        _checkpoint(4, model_name_or_path="org/other"),
        "(model_name_or_path: 'org/other' there, 'builtin:tiny-qwen2' here)",
    ),
    BadInput(
        "resume_from_a_checkpoint_of_other_targets",
        _resume_from(_checkpoint(3, lora_target_modules=["q_proj"])),
        "(lora_target_modules: ['q_proj'] there,",
    ),
    BadInput(
        "resume_from_a_damaged_checkpoint",
        _resume_from(_checkpoint(3, damaged=True)),
        "checkpoint-3 cannot be resumed: adapter_model.safetensors does not hold the content its marker",
    ),
    BadInput(
        "data_only_duplicate_keys",
        _write("input/data/train/data.jsonl", '{"question": "Q?", "question": "R?", "answer": "#### 1"}\n'),
        "data.jsonl:1: key 'question' appears twice in one object",
    ),
    BadInput(
        "data_only_lone_surrogate",
        _write("input/data/train/data.jsonl", '{"question": "Q \\ud800?", "answer": "#### 1"}\n'),
        "data.jsonl:1: text holds a lone surrogate '\\ud800', which is not valid Unicode",
    ),
    BadInput("data_folder_link_loop", _link_loop, "train/sub/up links to"),
    BadInput("data_only_hidden", _only_hidden_data, "(1 hidden entry skipped (.ipynb_checkpoints))"),
    # settings only the data or the file system can refute, all before the model loads
    BadInput(
        "eval_strategy_without_val",
        _hyperparameters(eval_strategy="steps"),
        "eval_strategy: needs validation rows: set val_dataset_path or val_fraction",
    ),
    BadInput(
        "report_to_not_installed",
        _hyperparameters(report_to="tensorboard"),
        "report_to: tensorboard is not installed in this environment",
    ),
    BadInput(
        "report_to_unknown",
        _hyperparameters(report_to="wandbb"),
        "report_to: unknown integration 'wandbb' (did you mean 'wandb'?)",
    ),
    # a file where the run writes a folder: unwritable even for root, whom no permission bit stops
    BadInput(
        "checkpoint_folder_unwritable",
        _write("checkpoints", "not a folder"),
        "/checkpoints: it cannot hold this run's checkpoints (File exists)",
    ),
    BadInput(
        "model_folder_unwritable", _write("model", "not a folder"), "/model cannot be written (File exists)"
    ),
    BadInput(
        "launch_argument_not_key_value",
        lambda base: None,
        "write launch arguments as key=value, not '--max-steps'",
        args=("--max-steps", "3"),
    ),
]
