"""The /opt/ml contract on its own: decoding, config files, channels, the failure file, redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bad_inputs import make_tree, write_json

from grpo_rlvr import sagemaker
from grpo_rlvr.redact import Redactor
from grpo_rlvr.sagemaker import ContractError, Paths, Resources


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("false", False),
        ("True", True),  # Python's str(True), from hand-written jobs
        ("3", 3),
        ("-2", -2),
        ("1e-5", 1e-5),
        ("0.25", 0.25),
        ('["q_proj", "v_proj"]', ["q_proj", "v_proj"]),
        ('{"a": 1, "b": [true, null]}', {"a": 1, "b": [True, None]}),
        ("null", None),
        ('"3"', "3"),  # the SDK's json.dumps of the string "3"
        ("all-linear", "all-linear"),
        ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
        ("007", "007"),  # not JSON: stays the string it is
        ("[q_proj", "[q_proj"),
        ("", ""),
        (4, 4),  # a hand-written file may already hold typed values
    ],
)
def test_decode_value(raw: object, expected: object) -> None:
    decoded = sagemaker.decode_value(raw)
    assert decoded == expected
    assert type(decoded) is type(expected)


# The SDK v2 sends str() of each value; the same typed values must arrive as from v3's json.dumps.
SDK_VALUES = [
    ["gsm8k_format", "gsm8k_correctness"],
    {"solution_prefix": "Let's see", "shots": 2},
    {"keywords": {"max_repeats": 2, "words": ["a", "b"]}, "on": True, "off": None, "lr": 1e-5},
    [{"a": [1, [2, [3]]]}, False, -0.5],
    True,
    False,
    None,
    [],
    {},
]


@pytest.mark.parametrize("value", SDK_VALUES)
def test_sdk_v2_and_v3_encodings_decode_to_the_same_value(value: object) -> None:
    v2, v3 = str(value), json.dumps(value)
    assert sagemaker.decode_value(v2) == sagemaker.decode_value(v3) == value
    assert type(sagemaker.decode_value(v2)) is type(value)


@pytest.mark.parametrize(
    "raw",
    [
        "(1, 2)",  # a tuple: not a shape JSON has
        "{1, 2}",  # a set
        "[b'x']",  # bytes
        "[1+2j]",  # a complex number
        "{1: 'a'}",  # a key that is not a string
        "[__import__('os').system('true')]",  # code, never run
        "[x for x in 'ab']",
        "['unclosed'",
        "'quoted'",  # a string in quotes stays the string it is, quotes included
        "nan",
        "1_000",
        "0x10",
    ],
)
def test_strings_that_merely_look_like_python_literals_stay_strings(raw: str) -> None:
    assert sagemaker.decode_value(raw) == raw


def test_decoding_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    raw = f"[open({str(marker)!r}, 'w')]"
    assert sagemaker.decode_value(raw) == raw
    assert not marker.exists()


def test_sdk_v2_hyperparameters_file_reads_as_the_typed_values(tmp_path: Path) -> None:
    """hyperparameters.json as the SDK v2 Estimator writes it: str() of every value."""
    typed = {
        "rewards": ["gsm8k_format", "gsm8k_correctness"],
        "prompt_format": {"solution_prefix": "Let's see"},
        "use_peft": True,
        "max_steps": 3,
        "learning_rate": 1e-05,
        "run_name": "plain text, not a literal",
    }
    paths = Paths(tmp_path)
    write_json(paths.config_dir / "hyperparameters.json", {k: str(v) for k, v in typed.items()})
    assert sagemaker.read_hyperparameters(paths) == typed


def test_hyperparameters_decoded_and_sagemaker_own_keys_dropped(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    write_json(
        paths.config_dir / "hyperparameters.json",
        {
            "learning_rate": "5e-06",
            "lora_target_modules": '["q_proj", "v_proj"]',
            "use_peft": "true",
            "sagemaker_program": "train.py",
            "sagemaker_region": '"us-east-1"',
            "_tuning_objective_metric": "reward",
        },
    )
    assert sagemaker.read_hyperparameters(paths) == {
        "learning_rate": 5e-06,
        "lora_target_modules": ["q_proj", "v_proj"],
        "use_peft": True,
    }


def test_absent_config_files_mean_one_local_host(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    assert sagemaker.read_hyperparameters(paths) == {}
    assert sagemaker.read_resources(paths) == Resources("algo-1", ("algo-1",), None, None)


def test_resources_give_rank_main_host_and_interface(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    write_json(
        paths.config_dir / "resourceconfig.json",
        {
            "current_host": "algo-2",
            "hosts": ["algo-1", "algo-2", "algo-3"],
            "network_interface_name": "eth0",
            "current_instance_type": "ml.p4d.24xlarge",
        },
    )
    resources = sagemaker.read_resources(paths)
    assert (resources.rank, resources.main_host) == (1, "algo-1")
    assert (resources.network_interface, resources.instance_type) == ("eth0", "ml.p4d.24xlarge")


def test_base_dir_from_env() -> None:
    assert Paths.from_env({}).base == Path("/opt/ml")
    paths = Paths.from_env({"SAGEMAKER_BASE_DIR": "/tmp/ml"})
    assert (paths.model_dir, paths.checkpoint_dir) == (Path("/tmp/ml/model"), Path("/tmp/ml/checkpoints"))
    assert (paths.output_data_dir, paths.failure_file) == (
        Path("/tmp/ml/output/data"),
        Path("/tmp/ml/output/failure"),
    )


def test_channels_map_to_recipe_keys(tmp_path: Path) -> None:
    paths = Paths(make_tree(tmp_path, val=True))
    (paths.data_dir / "rewards").mkdir()  # a channel holding a reward module needs no data rows
    (paths.data_dir / "rewards" / "mine.py").write_text("")
    channels = sagemaker.read_channels(paths)
    assert set(channels) == {"train", "val", "rewards"}
    assert sagemaker.contract_overrides(paths, channels) == {
        "dataset_path": str(tmp_path / "input/data/train"),
        "val_dataset_path": str(tmp_path / "input/data/val"),
        "model_dir": str(tmp_path / "model"),
        "output_dir": str(tmp_path / "checkpoints"),
        "summary_dir": str(tmp_path / "output/data"),
    }


def test_without_a_train_channel_the_recipe_data_stands(tmp_path: Path) -> None:
    from grpo_rlvr.config.loading import load_config

    paths = Paths(make_tree(tmp_path))
    (paths.data_dir / "train" / "data.jsonl").unlink()
    (paths.data_dir / "train").rmdir()
    write_json(paths.config_dir / "inputdataconfig.json", {})
    channels = sagemaker.read_channels(paths)
    overrides = sagemaker.contract_overrides(paths, channels)
    assert channels == {} and "dataset_path" not in overrides
    # The shipped GSM8K: no hub and no upload needed for the default recipes.
    assert load_config("smoke-cpu", overrides).data.dataset_path == "builtin:gsm8k"


def test_channels_on_disk_without_inputdataconfig_and_fastfile(tmp_path: Path) -> None:
    paths = Paths(make_tree(tmp_path))
    (paths.config_dir / "inputdataconfig.json").unlink()  # docker compose mounts only the data
    assert set(sagemaker.read_channels(paths)) == {"train"}
    write_json(paths.config_dir / "inputdataconfig.json", {"train": {"TrainingInputMode": "FastFile"}})
    assert set(sagemaker.read_channels(paths)) == {"train"}


def test_contract_keys_are_refused_as_hyperparameters() -> None:
    for key in sagemaker.CONTRACT_KEYS:
        with pytest.raises(ContractError, match=f"remove hyperparameter `{key}`"):
            sagemaker.check_no_contract_keys({key: "x"})


def test_failure_file_is_redacted_and_capped(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    secret = "hf_" + "s3cr3t" * 5
    text = sagemaker.write_failure(paths, f"fix learning_rate: {secret!r}\n" + "x" * 5000, Redactor([secret]))
    written = paths.failure_file.read_text()
    assert written == text + "\n"
    assert len(written) == sagemaker.FAILURE_LIMIT
    assert written.splitlines()[0] == "fix learning_rate: '***'"
    assert secret not in written


def test_a_secret_across_the_failure_files_cut_is_masked_before_the_cut(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    secret = "hf_" + "s3cr3t" * 5
    for start in range(sagemaker.FAILURE_LIMIT - len(secret) - 4, sagemaker.FAILURE_LIMIT):
        text = sagemaker.write_failure(paths, "x" * start + secret + "y" * 100, Redactor([secret]))
        assert len(text) < sagemaker.FAILURE_LIMIT
        assert secret[:4] not in paths.failure_file.read_text(), f"secret from column {start}"


def test_stale_failure_and_model_marker_are_cleared(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    sagemaker.write_failure(paths, "old failure", Redactor([]))
    paths.model_dir.mkdir()
    (paths.model_dir / "run_summary.json").write_text("{}")
    (paths.model_dir / "model.safetensors").write_text("weights")
    sagemaker.clear_stale_results(paths, "run_summary.json")
    assert not paths.failure_file.exists()
    assert sorted(p.name for p in paths.model_dir.iterdir()) == ["model.safetensors"]


def test_redactor_masks_env_secrets_by_name() -> None:
    env = {
        "HF_TOKEN": "hf_abcdefghijklmnop",
        "AWS_ACCESS_KEY_ID": "AKIAABCDEFGHIJKLMNOP",
        "WANDB_API_KEY": "0123456789abcdef",
        "TOKENIZERS_PARALLELISM": "false",  # a name with TOKEN in it is no secret
        "SHORT_TOKEN": "abc",  # too short to be a credential: masking it would garble text
    }
    redactor = Redactor.from_env(env)
    text = "hf_abcdefghijklmnop AKIAABCDEFGHIJKLMNOP 0123456789abcdef false abc"
    assert redactor.text(text) == "*** *** *** false abc"
    assert redactor.bytes(text.encode()) == b"*** *** *** false abc"


def test_redactor_holds_back_a_possible_secret_start() -> None:
    redactor = Redactor(["hf_abcdefghijklmnop"])
    assert redactor.split_safe(b"token=hf_abc") == (b"token=", b"hf_abc")
    assert redactor.split_safe(b"token=hf_abcdefghijklmnop!") == (b"token=***!", b"")
    assert redactor.split_safe(b"plain text") == (b"plain text", b"")


def test_hyperparameter_echo_masks_secret_keys_and_values() -> None:
    redactor = Redactor(["hf_abcdefghijklmnop"])
    echoed = redactor.value(
        {
            "hub_token": "anything",
            "run_name": "x-hf_abcdefghijklmnop",
            "tags": ["hf_abcdefghijklmnop"],
            "lr": 1e-5,
        }
    )
    assert echoed == {"hub_token": "***", "run_name": "x-***", "tags": ["***"], "lr": 1e-5}
    assert json.dumps(echoed).count("***") == 3


@pytest.mark.parametrize(
    "value", ["3", "1e-6", "true", "null", '"q"', "[1]", "True", "None", "['a']", "{'k': 1}", "no", "a b", ""]
)
def test_strings_are_sent_so_they_decode_as_the_same_strings(value: str) -> None:
    sent = sagemaker.encode_hyperparameters({"run_name": value, "n": 3, "xs": ["a"], "on": True})
    assert all(isinstance(v, str) for v in sent.values())
    assert sagemaker.decode_hyperparameters(sent) == {"run_name": value, "n": 3, "xs": ["a"], "on": True}
