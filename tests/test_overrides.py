"""One `key=value` grammar: the same text gives the same value in the final config on every route."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bad_inputs import make_tree, write_json

from grpo_rlvr import cli, handoff
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.launch import planning
from grpo_rlvr.overrides import NotKeyValue, from_flags, parse_overrides, read_value
from grpo_rlvr.redact import Redactor
from grpo_rlvr.sagemaker import Paths

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
RECIPE = "smoke-cpu"
# Lists, a mapping, booleans, numbers, strings that look like numbers, quoted strings, YAML 1.1 words.
OVERRIDES = [
    "lora_target_modules=[q_proj, v_proj]",
    "rewards=[gsm8k_format, keywords]",
    "reward_weights=[1, 0.5]",
    "reward_kwargs={keywords: {max_repeats: 2}}",
    "gradient_checkpointing=false",
    "use_peft=true",
    "learning_rate=1e-6",
    "max_steps=3",
    "lora_dropout=0.1",
    "run_name=3",
    'hub_model_id="007"',
    "model_revision='a b: c'",
    "save_strategy=no",
]
EXPECTED = {
    "lora_target_modules": ["q_proj", "v_proj"],
    "rewards": ["gsm8k_format", "keywords"],
    "reward_weights": [1.0, 0.5],
    "reward_kwargs": {"keywords": {"max_repeats": 2}},
    "gradient_checkpointing": False,
    "use_peft": True,
    "learning_rate": 1e-6,
    "max_steps": 3,
    "lora_dropout": 0.1,
    "run_name": "3",
    "hub_model_id": "007",
    "model_revision": "a b: c",
    "save_strategy": "no",
}


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _walked(resolved: dict[str, Any]) -> dict[str, Any]:
    """The overridden keys' values in a resolved config (they live in different sections)."""
    flat = {key: value for section in resolved.values() for key, value in section.items()}
    return {key: flat[key] for key in EXPECTED}


def _launched(base: Path) -> dict[str, Any]:
    """What the container's launcher validates from this /opt/ml tree, as training gets it."""
    plan, config = planning.make_plan(Paths(base), [], Redactor([]))
    with handoff.settings_file(plan.recipe, plan.overrides) as settings:
        child = load_config(*handoff.read_settings(settings), num_processes=plan.processes)
    assert _walked(child.resolved()) == _walked(config.resolved())  # the `accelerate launch` children
    return _walked(config.resolved())


def test_every_route_gives_the_same_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes: dict[str, dict[str, Any]] = {}

    # `grpo-rlvr train --recipe R key=value ...`
    assert cli.main(["train", "--recipe", RECIPE, "--print-config", *OVERRIDES]) == 0
    routes["train"] = _walked(json.loads(capsys.readouterr().out))

    # `grpo-rlvr train --recipe R --key value ...`, TRL's habit (bare flags and --key=value too)
    flags = []
    for item in OVERRIDES:
        key, _, value = item.partition("=")
        flags += [f"--{key}={value}"] if key.startswith("l") else [f"--{key.replace('_', '-')}", value]
    assert cli.main(["train", "--recipe", RECIPE, "--print-config", *flags, "--use_peft"]) == 0
    routes["train_flags"] = _walked(json.loads(capsys.readouterr().out))

    # `grpo-rlvr launch key=value ...` over a tree whose hyperparameters name only the recipe
    base = make_tree(tmp_path / "launch", {"recipe": RECIPE})
    _, config = planning.make_plan(Paths(base), OVERRIDES, Redactor([]))
    routes["launch"] = _walked(config.resolved())

    # scripts/local_opt_ml.py --hp key=value -> hyperparameters.json -> the launcher
    base = make_tree(tmp_path / "local")
    hp_args = [arg for item in OVERRIDES for arg in ("--hp", item)]
    assert _script("local_opt_ml").main(["--opt-ml", str(base), "--recipe", RECIPE, *hp_args]) == 0
    routes["local_opt_ml"] = _launched(base)

    # scripts/launch_sagemaker.py --hp key=value -> the job request SageMaker writes as hyperparameters.json
    job = _script("launch_sagemaker")
    argv = ["--image-uri", "i", "--role", "arn:aws:iam::123456789012:role/r", "--train", "s3://b/t"]
    argv += ["--output-path", "s3://b/o"]
    request = job.build_request(job.build_parser().parse_args([*argv, "--recipe", RECIPE, *hp_args]))
    assert all(isinstance(v, str) for v in request["HyperParameters"].values())
    base = make_tree(tmp_path / "sagemaker")
    write_json(base / "input" / "config" / "hyperparameters.json", request["HyperParameters"])
    routes["launch_sagemaker"] = _launched(base)

    assert routes["train"] == EXPECTED
    for name, values in routes.items():
        assert values == EXPECTED, name


def test_trl_style_flags_read_as_key_value() -> None:
    own = ("--recipe", "--print-config")
    assert from_flags(
        [
            "--recipe",
            "r",
            "--learning_rate",
            "-1e-5",
            "--bf16",
            "--max-steps=3",
            "a=1",
            "--print-config",
            "--x",
        ],
        own,
    ) == [
        "--recipe",
        "r",
        "learning_rate=-1e-5",
        "bf16=true",
        "max_steps=3",
        "a=1",
        "--print-config",
        "x=true",
    ]


def test_the_grammar() -> None:
    assert parse_overrides(["a=1", "b=x=y", "c=", "d= [1, 2]", "e=1e-6", "f=-3E5", "g={k: [v]}"]) == {
        "a": 1,
        "b": "x=y",
        "c": "",
        "d": [1, 2],
        "e": 1e-6,
        "f": -3e5,
        "g": {"k": ["v"]},
    }
    assert read_value("[unclosed") == "[unclosed"  # text YAML cannot read stays the text it is
    with pytest.raises(NotKeyValue, match="'--max-steps' is not key=value"):
        parse_overrides(["--max-steps"])
    with pytest.raises(NotKeyValue):
        parse_overrides(["=3"])
