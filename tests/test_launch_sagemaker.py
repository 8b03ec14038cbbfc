"""scripts/launch_sagemaker.py: the CreateTrainingJob request, checked against botocore's service model."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.model import Shape
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from grpo_rlvr.sagemaker_job import check_no_secrets, submit

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"
BASE_ARGS = [
    "--image-uri", f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/grpo-rlvr:abc123",
    "--role", f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution",
    "--train", "s3://bucket/gsm8k/train/",
    "--output-path", "s3://bucket/runs/",
    "--job-name", "grpo-rlvr-test-1",
]  # fmt: skip


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "launch_sagemaker", ROOT / "scripts" / "launch_sagemaker.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


launch = _load()


def _dry_run(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert launch.main([*BASE_ARGS, *extra, "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


def _constraint_errors(value: Any, shape: Shape, path: str = "") -> list[str]:
    """What ParamValidator leaves to the service: max lengths, regex patterns and enums from the model."""
    meta, errors = shape.metadata, []
    if shape.type_name == "structure":
        for key, member in value.items():
            errors += _constraint_errors(member, shape.members[key], f"{path}.{key}")
    elif shape.type_name == "list":
        if len(value) > meta.get("max", len(value)):
            errors.append(f"{path}: more than {meta['max']} items")
        for i, item in enumerate(value):
            errors += _constraint_errors(item, shape.member, f"{path}[{i}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            errors += _constraint_errors(key, shape.key, f"{path} key {key}")
            errors += _constraint_errors(item, shape.value, f"{path}[{key}]")
    elif shape.type_name == "string":
        if len(value) > meta.get("max", len(value)):
            errors.append(f"{path}: longer than {meta['max']}")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {meta['pattern']}")
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of the allowed values")
    elif shape.type_name in ("integer", "long") and value > meta.get("max", value):
        errors.append(f"{path}: above {meta['max']}")
    return errors


def _assert_valid(request: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    input_shape = model.operation_model("CreateTrainingJob").input_shape
    report = ParamValidator().validate(request, input_shape)
    assert not report.has_errors(), report.generate_report()
    assert not _constraint_errors(request, input_shape)


def test_without_train_the_job_uses_the_data_shipped_in_the_image(capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for a in BASE_ARGS if a not in ("--train", "s3://bucket/gsm8k/train/")]
    assert launch.main([*args, "--dry-run"]) == 0
    request = json.loads(capsys.readouterr().out)
    _assert_valid(request)
    assert "InputDataConfig" not in request  # nothing to upload: the recipe's builtin:gsm8k stands


def test_full_request_passes_botocore_validation(capsys: pytest.CaptureFixture[str]) -> None:
    request = _dry_run(
        capsys,
        "--val", "s3://bucket/gsm8k/val/",
        "--rewards", "s3://bucket/rewards/",
        "--hp", "learning_rate=1e-6",
        "--hp", 'lora_target_modules=["q_proj", "v_proj"]',
        "--hp", "use_vllm=true",
        "--mlflow-tracking-arn", f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:mlflow-tracking-server/grpo",
        "--hf-token-secret-id", "grpo-rlvr/hf-token",
        "--instance-type", "ml.p4d.24xlarge",
        "--instance-count", "2",
    )  # fmt: skip
    _assert_valid(request)
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train", "val", "rewards"]
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith("/grpo-rlvr:abc123")
    assert "ContainerEntrypoint" not in request["AlgorithmSpecification"]  # the image's own ENTRYPOINT runs
    assert request["ResourceConfig"]["InstanceCount"] == 2
    assert request["Environment"]["MLFLOW_TRACKING_URI"].startswith("arn:aws:sagemaker:")
    assert request["Environment"]["HF_TOKEN_SECRET_ID"] == "grpo-rlvr/hf-token"


def test_hyperparameters_are_strings_that_decode_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    hp = _dry_run(
        capsys,
        "--hp",
        "learning_rate=1e-6",
        "--hp",
        'lora_target_modules=["q_proj"]',
        "--hp",
        "reward_kwargs={}",
    )["HyperParameters"]
    assert all(isinstance(v, str) for v in hp.values())
    assert hp["recipe"] == "qwen2.5-0.5b-gsm8k"
    assert json.loads(hp["learning_rate"]) == 1e-6
    assert json.loads(hp["lora_target_modules"]) == ["q_proj"]
    assert json.loads(hp["reward_kwargs"]) == {}


def test_managed_spot_with_checkpoints(capsys: pytest.CaptureFixture[str]) -> None:
    request = _dry_run(capsys, "--max-run-hours", "2", "--max-wait-hours", "3")
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 10800}
    assert request["CheckpointConfig"] == {
        "S3Uri": "s3://bucket/runs/grpo-rlvr-test-1/checkpoints",
        "LocalPath": "/opt/ml/checkpoints",
    }
    _assert_valid(request)


def test_on_demand_has_no_max_wait(capsys: pytest.CaptureFixture[str]) -> None:
    request = _dry_run(capsys, "--no-spot")
    assert request["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"]
    _assert_valid(request)


@pytest.mark.parametrize(
    "extra",
    [
        ["--max-run-hours", "10", "--max-wait-hours", "5"],
        ["--val", "/local/path"],
        ["--hp", "HF_TOKEN=abc"],
        ["--env", "AWS_SECRET_ACCESS_KEY=abc"],
        ["--env", "NOTE=hf_" + "a" * 34],
        ["--hp", "oops"],
    ],
)
def test_bad_or_secret_input_is_refused(capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    assert launch.main([*BASE_ARGS, *extra, "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "hf_aaaa" not in captured.err


PLANTED = "planted-credential-0123"


CREDENTIAL = "looks like a credential"
IN_URL = "user and password"


@pytest.mark.parametrize(
    ("extra", "named", "says"),
    [
        (
            ["--hp", f"model_init_kwargs={{token: {PLANTED}}}"],
            "hyperparameter 'model_init_kwargs.token'",
            CREDENTIAL,
        ),
        (
            ["--hp", f"reward_kwargs={{judge: {{endpoints: [{{api_key: {PLANTED}}}]}}}}"],
            "hyperparameter 'reward_kwargs.judge.endpoints[0].api_key'",
            CREDENTIAL,
        ),
        (["--hp", f"run_name=https://me:{PLANTED}@example.com"], "hyperparameter 'run_name'", IN_URL),
        (["--env", f"NOTE=https://me:{PLANTED}@example.com/x"], "'NOTE'", IN_URL),
        (
            ["--mlflow-tracking-arn", f"https://me:{PLANTED}@mlflow.example.com"],
            "--mlflow-tracking-arn",
            IN_URL,
        ),
        (["--checkpoint-s3-uri", f"https://me:{PLANTED}@host/ckpt"], "--checkpoint-s3-uri", IN_URL),
        (["--image-uri", f"https://me:{PLANTED}@registry/image:1"], "--image-uri", IN_URL),
    ],
)
def test_credentials_at_any_depth_or_in_a_url_are_refused_by_place(
    capsys: pytest.CaptureFixture[str], extra: list[str], named: str, says: str
) -> None:
    assert launch.main([*BASE_ARGS, *extra, "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert named in captured.err and says in captured.err
    assert PLANTED not in captured.err


def test_a_url_without_a_password_is_no_credential(capsys: pytest.CaptureFixture[str]) -> None:
    request = _dry_run(capsys, "--env", "GIT_REMOTE=ssh://git@example.com/repo", "--hp", "run_name=a:b@c")
    assert request["Environment"]["GIT_REMOTE"] == "ssh://git@example.com/repo"


def test_host_secrets_never_reach_the_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "hf_" + "x" * 34
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret-value")
    out = json.dumps(_dry_run(capsys, "--hf-token-secret-id", "grpo-rlvr/hf-token"))
    assert token not in out and "host-secret-value" not in out


def test_submit_sends_exactly_the_printed_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    request = _dry_run(capsys, "--val", "s3://bucket/gsm8k/val/")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("sagemaker", region_name="us-east-1")
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/grpo-rlvr-test-1"
    with Stubber(client) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": arn}, request)
        assert submit(request, client, wait=False) == 0
        stub.assert_no_pending_responses()
    assert capsys.readouterr().out.strip() == arn


def test_dry_run_needs_neither_boto3_nor_the_sagemaker_sdk(tmp_path: Path) -> None:
    """Run in a fresh interpreter where importing boto3 or sagemaker fails."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, *a):\n"
        "        if name.split('.')[0] in ('boto3', 'botocore', 'sagemaker'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "launch_sagemaker.py"), *BASE_ARGS, "--dry-run"],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["TrainingJobName"] == "grpo-rlvr-test-1"


# name -> is it a credential; the container's masking and this script's refusal must agree on each.
SECRET_NAMES = {
    "HF_TOKEN": True,
    "hub_token": True,
    "AWS_SECRET_ACCESS_KEY": True,
    "AWS_ACCESS_KEY_ID": True,
    "WANDB_API_KEY": True,
    "MLFLOW_TRACKING_PASSWORD": True,
    "GIT_CREDENTIALS": True,
    "db_passwd": True,
    "SSH_PRIVATE_KEY": True,
    "max_new_tokens": False,
    "tokenizer_name": False,
    "HF_TOKEN_SECRET_ID": False,  # where the secret is kept, not the secret
    "learning_rate": False,
}


@pytest.mark.parametrize(("name", "secret"), SECRET_NAMES.items())
def test_one_secret_rule_for_the_container_and_the_job_request(name: str, secret: bool) -> None:
    from grpo_rlvr.redact import Redactor

    value = "a-value-long-enough"
    assert (Redactor.from_env({name: value}).text(f"log {value}") == "log ***") is secret
    assert (Redactor([]).value({name: value})[name] == "***") is secret
    if secret:
        with pytest.raises(ValueError, match="looks like a credential"):
            check_no_secrets("hyperparameter", {name: value})
    else:
        check_no_secrets("hyperparameter", {name: value})


ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution"


def _with(option: str, value: str) -> list[str]:
    """BASE_ARGS with `option` set to `value` (replaced when BASE_ARGS has it)."""
    args = list(BASE_ARGS)
    if option in args:
        args[args.index(option) + 1] = value
        return args
    return [*args, option, value]


# (option, value, what the one error line must say): values AWS would refuse, or that must not be sent.
REFUSED = [
    ("--role", "SageMakerExecution", "--role: 'SageMakerExecution' is not an IAM role ARN"),
    ("--role", f"arn:aws:iam::{ACCOUNT}:user/me", "is not an IAM role ARN"),
    ("--instance-type", "g5.xlarge", "did you mean ml.g5.xlarge"),
    ("--instance-type", "ml.g5.xlarg", "--instance-type: 'ml.g5.xlarg' is not a TrainingInstanceType"),
    ("--output-path", "bucket/runs/", "--output-path: 'bucket/runs' is not of the form"),
    (
        "--checkpoint-s3-uri",
        "/local/checkpoints",
        "--checkpoint-s3-uri: '/local/checkpoints' is not of the form",
    ),
    ("--train", "gs://bucket/train/", "--train: expected an s3:// URI"),
    ("--job-name", "grpo_rlvr_run", "--job-name: 'grpo_rlvr_run' is not 1 to 63 letters"),
    ("--job-name", "g" * 64, "--job-name"),
    ("--image-uri", "x" * 256, "--image-uri: must be 0 to 255 characters long, got 256"),
    ("--hp", "run_name=" + "x" * 2600, "--hp: must be 0 to 2500 characters long"),
    ("--env", "1BAD=x", "--env: '1BAD' is not of the form"),
    ("--max-run-hours", "inf", "--max-run-hours: must be a positive, finite number of hours, got 'inf'"),
    ("--max-run-hours", "nan", "--max-run-hours: must be a positive, finite number"),
    ("--max-run-hours", "-1", "--max-run-hours: must be a positive"),
    ("--max-run-hours", "0", "--max-run-hours: must be a positive"),
    ("--max-run-hours", "a day", "--max-run-hours: expected a number of hours, got 'a day'"),
    ("--max-wait-hours", "1e400", "--max-wait-hours: must be a positive, finite number"),
    ("--instance-count", "-1", "--instance-count: must be at least 1, got -1"),
    ("--instance-count", "0", "--instance-count: must be at least 1, got 0"),
    ("--instance-count", "two", "--instance-count: expected a whole number, got 'two'"),
    ("--volume-size", "-100", "--volume-size: must be at least 1, got -100"),
    ("--region", "us-esat-1", "--region 'us-esat-1': SageMaker is not offered there; did you mean"),
]


@pytest.mark.parametrize(("option", "value", "says"), REFUSED, ids=[f"{o} {v[:20]}" for o, v, _ in REFUSED])
def test_what_aws_would_refuse_is_one_line_before_any_call(option: str, value: str, says: str) -> None:
    """A fresh interpreter, as a user runs it: exit 2, one `error:` line naming the option, no traceback.
    No AWS credentials exist here, so any call would fail differently."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "launch_sagemaker.py"), *_with(option, value), "--dry-run"],
        env={"PATH": "/usr/bin:/bin", "AWS_CONFIG_FILE": "/nonexistent", "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("note:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("launch_sagemaker: error: ")
    assert says in lines[0]


def test_every_problem_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*_with("--role", "nope"), "--instance-type", "p4d.24xlarge", "--job-name", "a_b", "--dry-run"]
    assert launch.main(args) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert all(option in line for option in ("--role", "--instance-type", "--job-name"))


URL_WITH_CREDENTIALS = [
    ("--train", "s3://AKIDEXAMPLE:s3cr3tvalue@bucket/train/"),
    ("--output-path", "https://me:s3cr3tvalue@bucket.s3.amazonaws.com/runs/"),
    ("--mlflow-tracking-arn", "https://me:s3cr3tvalue@mlflow.example.com/"),
    ("--env", "MLFLOW_TRACKING_URI=https://me:s3cr3tvalue@mlflow.example.com/"),
    ("--env", "NOTE=see ftp://me:s3cr3tvalue@files.example.com/x"),
    ("--hp", "run_name=from https://me:s3cr3tvalue@host.example.com"),
    ("--hp", "reward_kwargs={remote: {url: 'https://me:s3cr3tvalue@host.example.com/'}}"),
]


@pytest.mark.parametrize(("option", "value"), URL_WITH_CREDENTIALS)
def test_urls_with_credentials_are_refused_without_echoing_them(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    assert launch.main([*_with(option, value), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "user and password" in captured.err
    assert "s3cr3tvalue" not in captured.err


@pytest.mark.parametrize(
    "url", ["s3://bucket/runs/@latest/", "https://mlflow.example.com/?user=a@b.c", "arn:aws:sagemaker:x"]
)
def test_an_at_sign_outside_the_authority_is_no_credential(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    request = _dry_run(capsys, "--mlflow-tracking-arn", url)
    assert request["Environment"]["MLFLOW_TRACKING_URI"] == url


def test_missing_region_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    assert launch.main(BASE_ARGS) == 2
    assert (
        capsys.readouterr().err == "launch_sagemaker: error: no AWS region: give --region or set AWS_REGION\n"
    )


def _stubbed_client(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client("sagemaker", region_name="eu-west-1")


def _describe(status: str, secondary: str, message: str = "", **extra: Any) -> dict[str, Any]:
    transitions = [{"Status": secondary, "StartTime": "2026-01-01T00:00:00Z", "StatusMessage": message}]
    return {
        "TrainingJobName": "grpo-rlvr-test-1",
        "TrainingJobArn": f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:training-job/grpo-rlvr-test-1",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "SecondaryStatusTransitions": transitions,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.g6e.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 100},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": "2026-01-01T00:00:00Z",
        "ModelArtifacts": {"S3ModelArtifacts": ""},
        **extra,
    }


@pytest.mark.parametrize(("final", "code"), [("Completed", 0), ("Failed", 1)])
def test_wait_prints_status_changes_and_links(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, final: str, code: int
) -> None:
    request = _dry_run(capsys)
    client = _stubbed_client(monkeypatch)
    name = {"TrainingJobName": "grpo-rlvr-test-1"}
    reason = {"FailureReason": "AlgorithmError: see output/failure"} if final == "Failed" else {}
    last = "Completed" if final == "Completed" else "Failed"
    with Stubber(client) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:job"}, request)
        stub.add_response("describe_training_job", _describe("InProgress", "Starting", "Preparing"), name)
        stub.add_response("describe_training_job", _describe("InProgress", "Starting", "Preparing"), name)
        stub.add_response(
            "describe_training_job", _describe("InProgress", "Training", "Training image"), name
        )
        stub.add_response("describe_training_job", _describe(final, last, **reason), name)
        assert submit(request, client, wait=True, poll_s=0) == code
        stub.assert_no_pending_responses()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "arn:job"
    assert out[1].startswith("console: https://eu-west-1.console.aws.amazon.com/sagemaker/")
    assert out[1].endswith("#/jobs/grpo-rlvr-test-1")
    assert out[2].startswith("logs: https://eu-west-1.console.aws.amazon.com/cloudwatch/")
    assert "TrainingJobs" in out[2] and "grpo-rlvr-test-1" in out[2]
    statuses = [line for line in out[3:] if line.startswith("grpo-rlvr-test-1: ")]
    assert statuses[:3] == [
        "grpo-rlvr-test-1: InProgress / Starting: Preparing",  # printed once, though seen twice
        "grpo-rlvr-test-1: InProgress / Training: Training image",
        f"grpo-rlvr-test-1: {final} / {last}",
    ]
    assert statuses[3:] == (["grpo-rlvr-test-1: AlgorithmError: see output/failure"] if reason else [])


def test_what_aws_refuses_at_submit_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _stubbed_client(monkeypatch)
    monkeypatch.setattr(boto3, "client", lambda *a, **k: client)
    with Stubber(client) as stub:
        stub.add_client_error("create_training_job", "ResourceLimitExceeded", "The account-level limit is 0")
        assert launch.main(BASE_ARGS) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ResourceLimitExceeded" in err and "Traceback" not in err
