"""The recipe schema: equal to what TRL's parser reads, and a first check that needs no TRL import."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from grpo_rlvr import recipe_schema
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.config.sections import SECTIONS, ConfigError

MINIMAL = {"model_name_or_path": "builtin:tiny-qwen2", "output_dir": "out"}


def test_the_snapshot_describes_the_installed_trl() -> None:
    """After a TRL upgrade: `python -m grpo_rlvr.recipe_schema` writes the snapshot anew."""
    snapshot = json.loads(recipe_schema.SNAPSHOT.read_text(encoding="utf-8"))
    assert snapshot == recipe_schema.describe(recipe_schema.trl_classes())


def test_every_field_is_described_as_the_parser_reads_it() -> None:
    """`field_kind` against HfArgumentParser's own actions, for every field of all five classes."""
    from transformers import HfArgumentParser
    from transformers.hf_argparser import string_to_bool

    classes = [*recipe_schema.trl_classes(), *SECTIONS.values()]
    parser = HfArgumentParser(classes, add_help=False, allow_abbrev=False)
    described = recipe_schema.describe(classes)
    hints = {name: hint for cls in classes for name, hint in typing.get_type_hints(cls).items()}
    checked = 0
    for action in parser._actions:
        if not action.option_strings or action.option_strings[0] != f"--{action.dest}":
            continue  # the `--no_x` complements and `--help`
        kind = described[action.dest]
        if action.choices:
            assert kind["type"] == "choice" and kind["choices"] == [str(c) for c in action.choices]
        else:
            names = {string_to_bool: "bool", int: "int", float: "float", str: "str"}
            assert kind["type"] == names.get(action.type, "other"), action.dest
        assert kind["list"] == (action.nargs == "+" or action.dest in recipe_schema.LIST_KEYS), action.dest
        assert kind["nullable"] == (type(None) in typing.get_args(hints[action.dest])), action.dest
        if "default" in kind and action.default is not None and not action.choices:
            assert kind["default"] == json.loads(json.dumps(action.default)), action.dest
        checked += 1
    assert checked == len(described) > 200


def test_every_problem_of_a_recipe_comes_in_one_message(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "learning_rat": 1e-5, "num_train_epochs": "two"}))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"use_peft": "maybe", "lora_dropout": 1.5, "learning_rate": None})
    err = caught.value
    assert [key for key, _ in err.problems] == [
        "learning_rat", "num_train_epochs", "use_peft", "lora_dropout", "learning_rate",
    ]  # fmt: skip
    text = str(err)
    assert text.startswith("5 settings to fix:")
    for says in (
        "learning_rat: unknown key (did you mean 'learning_rate'?)",
        "num_train_epochs: must be a number, got 'two'",
        "use_peft: must be true or false, got 'maybe'",
        "lora_dropout: must be in [0, 1), got 1.5",
        "learning_rate: may not be null",
    ):
        assert f"\n  {says}" in text


def test_a_list_item_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    with pytest.raises(ConfigError) as caught:
        load_config(path, ["reward_weights=[1.0, heavy]"])
    assert str(caught.value) == "reward_weights: each item must be a number, got 'heavy'"


def _train_in_a_fresh_process(recipe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`grpo-rlvr train --recipe RECIPE ARGS` in a new interpreter; it prints the exit code and which of
    torch, TRL, transformers and peft it had imported by then."""
    probe = (
        "import sys\n"
        "from grpo_rlvr import cli\n"
        f"code = cli.main(['train', '--recipe', {str(recipe)!r}, *{list(args)!r}])\n"
        "print(code, sorted(m for m in ('torch', 'trl', 'transformers', 'peft') if m in sys.modules))\n"
    )
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)


def test_a_recipe_mistake_is_found_without_importing_torch_or_trl(tmp_path: Path) -> None:
    """What makes `grpo-rlvr train`'s error come in seconds: neither torch nor TRL is imported first."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "learning_rat": 1e-5, "num_generations": 3}))
    done = _train_in_a_fresh_process(path, "--bf16", "perhaps")
    assert "learning_rat: unknown key" in done.stderr and "bf16: must be true or false" in done.stderr
    assert "num_generations: 3 does not divide the generation batch" in done.stderr
    assert done.stdout.strip() == "2 []"


def test_missing_local_paths_are_found_with_the_other_mistakes_without_importing_torch_or_trl(
    tmp_path: Path,
) -> None:
    """A model or data path that looks local and does not exist is in the same first message."""
    path = tmp_path / "recipe.yaml"
    values = {"model_name_or_path": "./no-model", "val_dataset_path": str(tmp_path / "val.jsonl")}
    path.write_text(yaml.safe_dump({**MINIMAL, **values, "learning_rat": 1e-5}))
    done = _train_in_a_fresh_process(path, "dataset_path=~/no/train.jsonl")
    assert "4 settings to fix" in done.stderr and "learning_rat: unknown key" in done.stderr
    assert "model_name_or_path: local path ./no-model does not exist" in done.stderr
    assert f"val_dataset_path: {tmp_path / 'val.jsonl'} does not exist" in done.stderr
    assert "dataset_path: ~/no/train.jsonl does not exist" in done.stderr
    assert done.stdout.strip() == "2 []"
