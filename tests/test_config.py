"""Recipes + overrides -> RunConfig: TRL's own dataclasses, every value type-checked, errors name the key."""

import json
from pathlib import Path

import pytest
import yaml

from grpo_rlvr import data
from grpo_rlvr.config import checks, loading, sections
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.config.sections import ConfigError
from grpo_rlvr.evaluation import evaluate
from grpo_rlvr.overrides import parse_overrides

REPO = Path(__file__).resolve().parents[1]
BAKED = ["qwen2.5-0.5b-gsm8k-seed", "qwen2.5-0.5b-gsm8k", "smoke-cpu"]
MINIMAL = {"model_name_or_path": "Qwen/Qwen2.5-0.5B", "per_device_train_batch_size": 8}


def recipe(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, **values}))
    return path


def error(tmp_path: Path, overrides: dict | list, **values: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(recipe(tmp_path, **values), overrides)
    return caught.value


@pytest.mark.parametrize("name", BAKED)
def test_baked_recipes_load_by_name(name: str) -> None:
    config = load_config(name)
    assert config.recipe_path == REPO / "recipes" / f"{name}.yaml"
    assert config.rewards.rewards == ["gsm8k_format", "gsm8k_correctness"]
    assert [f.__name__ for f in config.reward_funcs] == config.rewards.rewards


def test_seed_recipe_is_the_published_setup() -> None:
    config = load_config("qwen2.5-0.5b-gsm8k-seed")
    m, t, d = config.model, config.training, config.data
    assert (m.model_name_or_path, m.load_in_4bit, m.use_peft, m.lora_r, m.lora_alpha) == (
        "Qwen/Qwen2.5-0.5B", True, True, 16, 16,
    )  # fmt: skip
    assert set(m.lora_target_modules) == {f"{p}_proj" for p in ("q", "k", "v", "o", "gate", "up", "down")}
    assert (t.learning_rate, t.lr_scheduler_type.value, t.warmup_steps, t.seed) == (
        1.84e-4,
        "cosine",
        0.1,
        42,
    )
    assert (t.per_device_train_batch_size, t.gradient_accumulation_steps, t.num_train_epochs) == (16, 2, 2)
    assert (d.num_shots, d.max_prompt_tokens, d.prompt_length_policy) == (8, 1536, "fail")
    # TRL 0.18's GRPO as the published run had it, the trained head and embeddings, double quantization
    assert (t.beta, t.loss_type, t.mask_truncated_completions, t.num_generations) == (0.04, "bnpo", False, 8)
    assert (m.lora_modules_to_save, m.use_bnb_nested_quant) == (["lm_head", "embed_tokens"], True)
    assert (config.prompt_format.chat, d.end_tokens, d.val_fraction) == (True, ["<|im_end|>"], 0.1)
    # 256 completions per optimizer step on the published 8 GPUs
    eight = load_config("qwen2.5-0.5b-gsm8k-seed", num_processes=8).training
    assert eight.per_device_train_batch_size * eight.gradient_accumulation_steps * 8 == 256
    assert "tf32: true" in (REPO / "recipes" / "qwen2.5-0.5b-gsm8k-seed.yaml").read_text()


def test_gpu_recipe_generates_with_colocated_vllm_and_fits_the_longest_prompt() -> None:
    config = load_config("qwen2.5-0.5b-gsm8k")
    t = config.training
    assert t.use_vllm and t.vllm_mode == "colocate" and t.bf16
    assert t.vllm_max_model_length >= config.data.max_prompt_tokens + t.max_completion_length
    assert t.generation_batch_size % t.num_generations == 0


def test_typed_and_string_overrides_give_the_same_config(tmp_path: Path) -> None:
    typed = {"learning_rate": 3e-5, "lora_target_modules": ["q_proj", "v_proj"], "use_peft": True,
             "rewards": ["keywords"], "reward_kwargs": {"keywords": {"max_repeats": 1}},
             "max_completion_length": None}  # fmt: skip
    strings = ["learning_rate=3e-5", "lora_target_modules=[q_proj, v_proj]", "use_peft=true",
               "rewards=[keywords]", 'reward_kwargs={"keywords": {"max_repeats": 1}}',
               "max_completion_length=null"]  # fmt: skip
    a, b = load_config(recipe(tmp_path), typed), load_config(recipe(tmp_path), strings)
    assert a.resolved() == b.resolved()
    assert a.training.learning_rate == 3e-5 and a.model.lora_target_modules == ["q_proj", "v_proj"]
    assert a.training.max_completion_length is None
    assert a.rewards.reward_kwargs == {"keywords": {"max_repeats": 1}}


def test_overrides_win_over_the_recipe_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    config = load_config(recipe(tmp_path, num_shots=4), ["num_shots=2"])
    assert config.data.num_shots == 2
    assert config.training.output_dir == loading.DEFAULT_OUTPUT_DIR
    assert config.training.use_cpu and not config.training.bf16  # this machine has no CUDA
    assert config.training.report_to == []


@pytest.mark.parametrize(
    ("overrides", "key", "says"),
    [
        pytest.param(
            {"learning_rat": 1e-5}, "learning_rat", "did you mean 'learning_rate'", id="unknown-key"
        ),
        pytest.param({"no_bf16": True}, "no_bf16", "unknown key", id="argparse-complement-is-not-a-key"),
        pytest.param(
            {"num_train_epochs": "two"}, "num_train_epochs", "must be a number, got 'two'", id="wrong-type"
        ),
        pytest.param(
            {"use_peft": "maybe"}, "use_peft", "must be true or false, got 'maybe'", id="wrong-bool"
        ),
        pytest.param(
            {"prompt_length_policy": "cut"},
            "prompt_length_policy",
            "must be one of 'drop', 'fail'; got 'cut'",
            id="bad-choice",
        ),
        pytest.param({"run_name": ["a", "b"]}, "run_name", "takes one value", id="list-for-scalar"),
        pytest.param({"learning_rate": None}, "learning_rate", "may not be null", id="null-for-required"),
        pytest.param(
            {"model_name_or_path": "/no/such/dir"}, "model_name_or_path", "does not exist", id="no-model"
        ),
        pytest.param({"model_name_or_path": "qwen"}, "model_name_or_path", "org/name", id="not-a-hub-id"),
        pytest.param(
            {"model_name_or_path": "builtin:huge"}, "model_name_or_path", "unknown built-in", id="builtin"
        ),
        pytest.param(
            {"rewards": ["gsm8k_format", "nope"]}, "rewards", "unknown reward(s) ['nope']", id="reward"
        ),
        pytest.param(
            {"reward_kwargs": {"nope": {}}}, "rewards", "unknown reward(s) ['nope']", id="reward-kwargs"
        ),
        pytest.param({"reward_weights": [1.0]}, "reward_weights", "1 weights for 2 rewards", id="weights"),
        pytest.param({"num_shots": 9}, "num_shots", "between 0 and 8, got 9", id="too-many-shots"),
        pytest.param({"num_shots": -1}, "num_shots", "between 0 and 8, got -1", id="negative-shots"),
        pytest.param({"val_fraction": 1.0}, "val_fraction", "[0, 1)", id="val-fraction"),
        pytest.param({"eval_at_end": True}, "eval_at_end", "needs validation rows", id="eval-without-val"),
        pytest.param({"eval_shots": [0, 9]}, "eval_shots", "between 0 and 8, got [0, 9]", id="eval-shots"),
        pytest.param({"eval_max_new_tokens": 0}, "eval_max_new_tokens", "at least 1", id="eval-tokens"),
        pytest.param({"load_in_4bit": True}, "use_peft", "set use_peft: true", id="4bit-without-lora"),
        pytest.param({"dataset_path": "./missing.jsonl"}, "dataset_path", "does not exist", id="no-data"),
        pytest.param(
            {"use_vllm": True, "vllm_max_model_length": 1024},
            "vllm_max_model_length",
            "= 2048",
            id="vllm-length",
        ),
    ],
)
def test_bad_values_name_the_key_to_fix(tmp_path: Path, overrides: dict, key: str, says: str) -> None:
    err = error(tmp_path, overrides)
    assert err.key == key and says in str(err)


def test_group_size_error_shows_trl_rule_with_the_numbers(tmp_path: Path) -> None:
    err = error(tmp_path, {"num_generations": 3, "gradient_accumulation_steps": 2})
    assert err.key == "num_generations"
    assert "per_device_train_batch_size=8 x processes=1 x steps_per_generation=2" in str(err)
    assert "= 16: use one of [2, 4, 8, 16]" in str(err)


def test_group_size_counts_the_processes_the_launcher_will_start(tmp_path: Path) -> None:
    values = {"per_device_train_batch_size": 4, "num_generations": 8}
    with pytest.raises(ConfigError, match="processes=1"):
        load_config(recipe(tmp_path), values)
    assert load_config(recipe(tmp_path), values, num_processes=2).training.num_generations == 8


def test_overrides_must_be_key_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(recipe(tmp_path), ["learning_rate"])
    assert parse_overrides(["a=1", "b=x=y", "c="]) == {"a": 1, "b": "x=y", "c": ""}


def test_unknown_recipe_lists_the_baked_ones() -> None:
    with pytest.raises(ConfigError, match="smoke-cpu") as caught:
        load_config("no-such-recipe")
    assert caught.value.key == "recipe"


def test_baked_recipes_folder_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(MINIMAL))
    monkeypatch.setenv(loading.RECIPES_ENV, str(tmp_path))
    assert load_config("mine").recipe_path == tmp_path / "mine.yaml"
    assert load_config("smoke-cpu").recipe_path == REPO / "recipes" / "smoke-cpu.yaml"  # repo as fallback


@pytest.fixture
def tensorboard_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second installed integration, for the tests of how `report_to` lists combine (the image ships
    MLflow only; `test_checks_before_paying.py` checks that a missing one is refused)."""
    import transformers.integrations

    monkeypatch.setattr(
        transformers.integrations, "get_available_reporting_integrations", lambda: ["mlflow", "tensorboard"]
    )


def test_mlflow_joins_report_to_when_a_tracking_uri_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tensorboard_installed: None
) -> None:
    monkeypatch.setenv(loading.MLFLOW_ENV, "file:///tmp/mlruns")
    assert load_config(recipe(tmp_path)).training.report_to == ["mlflow"]
    assert load_config(recipe(tmp_path, report_to="tensorboard")).training.report_to == [
        "tensorboard",
        "mlflow",
    ]
    assert load_config(recipe(tmp_path, report_to=["mlflow", "tensorboard"])).training.report_to == [
        "mlflow",
        "tensorboard",
    ]


@pytest.mark.parametrize(
    "off",
    [
        pytest.param({"report_to": "none"}, id="recipe-none"),
        pytest.param({"report_to": None}, id="recipe-null"),
        pytest.param({"report_to": []}, id="recipe-empty-list"),
        pytest.param(["report_to=none"], id="override-none"),
        pytest.param(["report_to=[none]"], id="override-list"),
    ],
)
def test_explicit_report_to_none_turns_mlflow_off_despite_the_tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, off: dict | list, tensorboard_installed: None
) -> None:
    monkeypatch.setenv(loading.MLFLOW_ENV, "file:///tmp/mlruns")
    values, overrides = (off, []) if isinstance(off, dict) else ({"report_to": "tensorboard"}, off)
    assert load_config(recipe(tmp_path, **values), overrides).training.report_to == []


def test_report_to_takes_a_list_or_one_name_without_a_tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tensorboard_installed: None
) -> None:
    monkeypatch.delenv(loading.MLFLOW_ENV, raising=False)
    assert load_config(recipe(tmp_path, report_to=["mlflow"])).training.report_to == ["mlflow"]
    assert load_config(recipe(tmp_path), ["report_to=[mlflow, tensorboard]"]).training.report_to == [
        "mlflow",
        "tensorboard",
    ]
    assert load_config(recipe(tmp_path), ["report_to=tensorboard"]).training.report_to == ["tensorboard"]


def test_yaml_1_1_words_stay_strings_in_recipes_and_overrides(tmp_path: Path) -> None:
    """`no` is TRL's value for save/eval/logging strategies; YAML 1.1 would read it as False."""
    path = recipe(tmp_path)
    path.write_text(path.read_text() + "save_strategy: no\nlogging_strategy: no\nuse_peft: true\n")
    config = load_config(path)
    assert (config.training.save_strategy, config.training.logging_strategy) == ("no", "no")
    assert config.model.use_peft is True

    config = load_config(recipe(tmp_path), ["save_strategy=no", "eval_strategy=no", "use_peft=yes"])
    assert (config.training.save_strategy, config.training.eval_strategy) == ("no", "no")
    assert config.model.use_peft is True  # "yes" reaches argparse's bool parser as text
    words = ["yes", "no", "on", "off", "y", "n", "Yes", "NO"]
    assert parse_overrides([f"{w}={w}" for w in words]) == {w: w for w in words}
    assert parse_overrides(["a=true", "b=False", "c=[no, TRUE]"]) == {
        "a": True,
        "b": False,
        "c": ["no", True],
    }


def test_eval_at_end_defaults_to_the_training_shots(tmp_path: Path) -> None:
    run = load_config(recipe(tmp_path, num_shots=3, eval_at_end=True, val_fraction=0.1)).run
    assert (run.eval_at_end, run.eval_shots, run.eval_limit) == (True, [3], None)
    run = load_config(recipe(tmp_path), ["eval_shots=[0, 8]", "eval_limit=50"]).run
    assert (run.eval_at_end, run.eval_shots, run.eval_limit) == (False, [0, 8], 50)


def test_resolved_config_is_plain_json_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secretvalue123")
    config = load_config(
        recipe(tmp_path), {"hub_token": "hf_secretvalue123", "run_name": "x-hf_secretvalue123"}
    )
    text = json.dumps(config.resolved())
    assert "hf_secretvalue123" not in text
    resolved = json.loads(text)
    assert resolved["training"]["hub_token"] == "***" and resolved["training"]["run_name"] == "x-***"
    assert resolved["model"]["model_name_or_path"] == "Qwen/Qwen2.5-0.5B"


def test_user_reward_module_registers_once_and_its_rewards_resolve(tmp_path: Path) -> None:
    module = tmp_path / "my_rewards.py"
    module.write_text(
        "def shortness(completions, **kwargs):\n    return [1.0 / (1 + len(c)) for c in completions]\n"
    )
    try:
        for _ in range(2):  # a launcher and the training process may both load the same config
            config = load_config(recipe(tmp_path, reward_module=str(module), rewards=["shortness"]))
            assert config.reward_funcs[0](["", "abc"]) == [1.0, 0.25]
    finally:
        from grpo_rlvr.rewards import REGISTRY

        REGISTRY.pop("shortness", None)
        checks._LOADED_REWARD_MODULES.discard(module.resolve())
    err = error(tmp_path, {"reward_module": str(tmp_path / "missing.py")})
    assert err.key == "reward_module" and "missing.py" in str(err)


NINES = "9" * 2600  # float("9" * 2600) is inf


@pytest.mark.parametrize(
    ("where", "says"),
    [
        pytest.param("yaml", "learning_rate: must be a finite number, got inf", id="recipe-2600-nines"),
        pytest.param("override", "learning_rate: must be a finite number, got inf", id="override-2600-nines"),
        pytest.param("typed", "learning_rate: must be a finite number, got inf", id="hyperparameter-1e999"),
        pytest.param("nan", "learning_rate: must be a finite number, got nan", id="hyperparameter-nan"),
    ],
)
def test_non_finite_numbers_are_input_errors_wherever_they_enter(
    tmp_path: Path, where: str, says: str
) -> None:
    from grpo_rlvr.sagemaker import decode_value

    if where == "yaml":
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(MINIMAL) + f"learning_rate: {NINES}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        err = caught.value
    elif where == "override":
        err = error(tmp_path, [f"learning_rate={NINES}"])
    else:
        err = error(tmp_path, {"learning_rate": decode_value("1e999" if where == "typed" else "NaN")})
    assert err.key == "learning_rate" and str(err) == says


UNUSABLE = "is not a usable path"
CHECKED_EARLY = {
    "int64": ({"max_steps": int(NINES[:30])}, "max_steps", "must be at most 9.22e+18"),
    "negative-lr": ({"learning_rate": -1e-5}, "learning_rate", "greater than 0"),
    "batch-0": ({"per_device_train_batch_size": 0}, "per_device_train_batch_size", "at least 1"),
    "dropout": ({"lora_dropout": 1.5}, "lora_dropout", "in [0, 1)"),
    "top-p": ({"top_p": 0}, "top_p", "in (0, 1]"),
    "grad-norm": ({"max_grad_norm": -1}, "max_grad_norm", "at least 0"),
    "nested-inf": ({"reward_kwargs": {"gsm8k_format": {"scale": float("inf")}}}, "reward_kwargs", "finite"),
    "5000-digits": (["max_steps=" + "9" * 5000], "max_steps", "must be at most 9.22e+18 in size"),
    "nested-100000": (["learning_rate=" + "[" * 100_000], "learning_rate", "must be a number"),
    "long-model-path": (
        {"model_name_or_path": "m" * 2600},
        "model_name_or_path",
        f"(2600 characters) {UNUSABLE}",
    ),
    "long-hub-id": ({"model_name_or_path": "org/" + "m" * 200}, "model_name_or_path", "no valid hub id"),
    "long-data-path": ({"dataset_path": "d" * 2600}, "dataset_path", UNUSABLE),
    "long-module": ({"reward_module": "r" * 2600}, "reward_module", UNUSABLE),
}


@pytest.mark.parametrize(("overrides", "key", "says"), CHECKED_EARLY.values(), ids=CHECKED_EARLY)
def test_every_number_and_path_is_checked_before_any_model_loads(
    tmp_path: Path, overrides: dict | list, key: str, says: str
) -> None:
    err = error(tmp_path, overrides)
    assert err.key == key and says in str(err) and len(str(err)) < 300


def test_every_ranged_key_is_a_setting() -> None:
    from dataclasses import fields

    from trl import GRPOConfig, ModelConfig

    assert set(sections.RANGES) <= {f.name for cls in (GRPOConfig, ModelConfig) for f in fields(cls)}


@pytest.mark.parametrize("name", ["r" * 2600, "../recipes/smoke-cpu", "smoke-cpu/../smoke-cpu"])
def test_a_recipe_name_is_a_plain_name_or_a_file(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(name)
    assert caught.value.key == "recipe" and len(str(caught.value)) < 400


def test_a_mistyped_reward_option_is_named_like_a_mistyped_key(tmp_path: Path) -> None:
    """`**kwargs` takes TRL's columns, so a reward would swallow a typo: options are checked by name."""
    key_err = error(tmp_path, {"learning_rat": 1e-5})
    option_err = error(tmp_path, {"rewards": ["keywords"], "reward_kwargs": {"keywords": {"max_repeat": 2}}})
    assert str(key_err) == "learning_rat: unknown key (did you mean 'learning_rate'?)"
    assert option_err.key == "reward_kwargs"
    assert str(option_err).startswith(
        "reward_kwargs: unknown option 'max_repeat' of reward 'keywords' (did you mean 'max_repeats'?)"
    )
    assert "'min_other_words'" in str(option_err)  # the options it does take
    err = error(tmp_path, {"reward_kwargs": {"gsm8k_format": {"strict": 1}}})
    assert err.key == "reward_kwargs" and "its options: none" in str(err)
    err = error(tmp_path, {"reward_kwargs": {"gsm8k_format": {"prompt_format": {}}}})  # the recipe's, bound
    assert err.key == "reward_kwargs" and "unknown option 'prompt_format'" in str(err)
    ok = load_config(
        recipe(tmp_path), {"rewards": ["keywords"], "reward_kwargs": {"keywords": {"max_repeats": 2}}}
    )
    assert ok.reward_funcs[0].keywords == {"max_repeats": 2}


def test_a_user_reward_option_is_checked_against_its_signature(tmp_path: Path) -> None:
    module = tmp_path / "scaled.py"
    module.write_text(
        "def scaled(completions, *, scale=1.0, **kwargs):\n    return [scale] * len(completions)\n"
    )
    try:
        values = {"reward_module": str(module), "rewards": ["scaled"]}
        config = load_config(recipe(tmp_path, **values), {"reward_kwargs": {"scaled": {"scale": 2.0}}})
        assert config.reward_funcs[0](["a"]) == [2.0]
        err = error(tmp_path, {"reward_kwargs": {"scaled": {"scal": 2.0}}}, **values)
        assert "unknown option 'scal' of reward 'scaled' (did you mean 'scale'?)" in str(err)
    finally:
        from grpo_rlvr.rewards import REGISTRY

        REGISTRY.pop("scaled", None)
        checks._LOADED_REWARD_MODULES.discard(module.resolve())


def test_a_home_relative_data_path_is_a_local_file_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gsm8k_dir: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    err = error(tmp_path, {"dataset_path": "~/d.jsonl"})
    assert err.key == "dataset_path" and "~/d.jsonl does not exist" in str(err)
    (tmp_path / "d.jsonl").write_text((gsm8k_dir / "test.jsonl").read_text().split("\n", 1)[0] + "\n")
    assert load_config(recipe(tmp_path), {"dataset_path": "~/d.jsonl"}).data.dataset_path == "~/d.jsonl"
    rows, report = data.load_examples("~/d.jsonl")  # read from the home folder, never asked of the hub
    assert len(rows) == 1 and report.kept == 1
    assert evaluate.load_eval_examples("~/d.jsonl")[1]["split"] is None  # a local file has no hub split


@pytest.mark.parametrize("value", ["[" * 100_000, "9" * 5000], ids=["nested-100000", "5000-digits"])
def test_a_recipe_file_past_yaml_limits_is_the_recipe_to_fix(tmp_path: Path, value: str) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(MINIMAL) + f"max_steps: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "recipe" and "too large or too deeply nested to read" in str(caught.value)
