"""A SageMaker training job as the job scripts send it: hyperparameters, the CreateTrainingJob request, the
checks before anything is paid for, and following the job to its end.

`scripts/launch_sagemaker.py` builds and sends the request; `scripts/local_opt_ml.py` writes the same
hyperparameters into a local /opt/ml tree. Both read `--hp KEY=VALUE` as `grpo-rlvr train` reads
`key=value` (`grpo_rlvr.overrides`) and send SageMaker's strings (`encode_hyperparameters`). Secrets
never enter a request (job requests are readable by anyone with DescribeTrainingJob): credential-shaped
hyperparameters and environment entries, and URLs carrying a user and password, are refused.

Needs the standard library and PyYAML; botocore only to check the request against the service model.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from grpo_rlvr.overrides import parse_overrides, split_assignment
from grpo_rlvr.redact import find_secret, is_secret_name
from grpo_rlvr.sagemaker import decode_value, encode_hyperparameters

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
# A URL's userinfo (`https://user:password@host/`): the part before `@` in the authority.
_URL_PASSWORD = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s@:]*:[^/?#\s@]*@")  # user:password@
# The trainer prints each logging step as a dict line of numbers (grpo_rlvr.history):
#   {'loss': 0.0123, 'grad_norm': 0.51, ..., 'reward': 0.75, ..., 'step_time': 1.9}
# SageMaker reads these from the job's log into the console's charts and CloudWatch.
LOGGED_METRICS = {
    "train:reward": "reward",
    "train:reward_std": "reward_std",
    "train:loss": "loss",
    "train:grad_norm": "grad_norm",
    "train:learning_rate": "learning_rate",
    "train:step_time_s": "step_time",
    "train:completion_length": "completions/mean_length",
}
FINAL_STATUSES = ("Completed", "Failed", "Stopped")


class JobRequestError(ValueError):
    """A job request AWS would refuse, or one that must not be sent; the message says what to fix."""


def hyperparameters(recipe: str, items: list[str]) -> dict[str, str]:
    """The recipe and `--hp KEY=VALUE` overrides as the strings a job request carries."""
    return encode_hyperparameters({"recipe": recipe, **parse_overrides(items)})


def check_no_secrets(kind: str, values: Mapping[str, str]) -> None:
    """No credential by name or by shape, and no URL with a user and password in it, at any depth of
    the values' text."""
    for key, value in values.items():
        refuse_url_credentials(f"{kind} {key!r}", value)
        place = key if is_secret_name(key) else find_secret({key: decode_value(value)})
        if place:
            raise JobRequestError(
                f"{kind} {place!r} looks like a credential; keep secrets in AWS Secrets Manager and pass the "
                "secret's id instead (e.g. --hf-token-secret-id)"
            )


def refuse_url_credentials(where: str, value: str) -> None:
    """A URL's user and password would be readable in the job request: refuse it without echoing it."""
    if _URL_PASSWORD.search(value):
        raise JobRequestError(
            f"{where} holds a URL with a user and password in it (scheme://user:password@host); remove them "
            "and give the credential to the job another way (an IAM role, or AWS Secrets Manager)"
        )


def metric_definitions() -> list[dict[str, str]]:
    """One MetricDefinition per logged key: `'key': number` (the quote before the key keeps `loss` from
    matching `train_loss`; a number in quotes, as transformers' own progress bar prints it, matches too)."""
    return [
        {"Name": name, "Regex": f"'{key}': '?(-?[0-9.]+(?:e[-+]?[0-9]+)?)"}
        for name, key in LOGGED_METRICS.items()
    ]


def check_recipe(recipe: str, items: list[str]) -> None:
    """Validate the recipe and overrides as the job's `grpo-rlvr train` will, before anything is paid for.

    Raises the ConfigError train would print. A mistyped recipe name fails before torch and TRL load;
    keys need TRL's settings, so from a plain checkout without the training stack only the job checks them.
    """
    from grpo_rlvr.config.loading import find_recipe, load_config
    from grpo_rlvr.sagemaker import check_no_contract_keys

    overrides = parse_overrides(items)
    check_no_contract_keys(overrides)
    find_recipe(recipe)
    try:
        from trl import GRPOConfig  # noqa: F401  (trl imports lazily: this loads the training stack)
    except (ImportError, RuntimeError) as err:
        print(f"note: recipe keys are checked when the job starts, not here ({err})", file=sys.stderr)
        return
    load_config(recipe, overrides)


def channel(name: str, s3_uri: str) -> dict[str, Any]:
    if not s3_uri.startswith("s3://"):
        raise JobRequestError(f"--{name}: expected an s3:// URI, got {s3_uri!r}")
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": s3_uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }


def build_request(args: Any) -> dict[str, Any]:
    """The CreateTrainingJob parameters for the launch script's parsed command line, checked."""
    for option in (
        "image_uri",
        "train",
        "val",
        "rewards",
        "output_path",
        "checkpoint_s3_uri",
        "mlflow_tracking_arn",
    ):
        if getattr(args, option):
            refuse_url_credentials(f"--{option.replace('_', '-')}", getattr(args, option))
    hp = hyperparameters(args.recipe, args.hp)
    environment = dict(map(split_assignment, args.env))  # environment values are text, kept as typed
    if args.mlflow_tracking_arn:
        environment["MLFLOW_TRACKING_URI"] = args.mlflow_tracking_arn
    if args.mlflow_experiment:
        environment["MLFLOW_EXPERIMENT_NAME"] = args.mlflow_experiment
    if args.hf_token_secret_id:
        environment["HF_TOKEN_SECRET_ID"] = args.hf_token_secret_id
    check_no_secrets("hyperparameter", hp)
    check_no_secrets("environment variable", environment)

    output_path = args.output_path.rstrip("/")
    named = (("train", args.train), ("val", args.val), ("rewards", args.rewards))
    channels = [channel(name, uri) for name, uri in named if uri]
    max_run = round(args.max_run_hours * 3600)
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": max_run}
    if args.spot:
        max_wait = round(args.max_wait_hours * 3600)
        if max_wait < max_run:
            raise JobRequestError(
                "--max-wait-hours must be at least --max-run-hours for managed spot training"
            )
        stopping["MaxWaitTimeInSeconds"] = max_wait

    request: dict[str, Any] = {
        "TrainingJobName": args.job_name,
        "RoleArn": args.role,
        "AlgorithmSpecification": {
            "TrainingImage": args.image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(),
        },
        "HyperParameters": hp,
        **({"InputDataConfig": channels} if channels else {}),
        "OutputDataConfig": {"S3OutputPath": output_path},
        "ResourceConfig": {
            "InstanceType": args.instance_type,
            "InstanceCount": args.instance_count,
            "VolumeSizeInGB": args.volume_size,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": args.spot,
        "CheckpointConfig": {
            "S3Uri": args.checkpoint_s3_uri or f"{output_path}/{args.job_name}/checkpoints",
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        },
    }
    if environment:
        request["Environment"] = environment
    check_with_aws_model(request)
    check_recipe(args.recipe, args.hp)
    return request


def check_with_aws_model(request: Mapping[str, Any]) -> None:
    """Raise JobRequestError naming every field AWS would refuse (botocore's service model), in one line."""
    from grpo_rlvr.aws_api import AwsModelMissing, request_problems

    try:
        problems = request_problems(request)
    except AwsModelMissing:
        print(
            "note: botocore is not installed, so the request is not checked against the AWS API model",
            file=sys.stderr,
        )
        return
    if problems:
        raise JobRequestError("AWS would refuse this job: " + "; ".join(problems))


def check_region(region: str) -> None:
    from grpo_rlvr.aws_api import region_problem

    problem = region_problem(region)
    if problem:
        raise JobRequestError(problem)


def follow(
    client: Any,
    name: str,
    links: Mapping[str, str],
    poll_s: float = 30,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Print each status change of job `name` (with SageMaker's message) until it ends; its final status."""
    for label, url in links.items():
        print(f"{label}: {url}")
    seen: tuple[str, str] | None = None
    while True:
        job = client.describe_training_job(TrainingJobName=name)
        status = (job["TrainingJobStatus"], job.get("SecondaryStatus", ""))
        if status != seen:
            transitions = job.get("SecondaryStatusTransitions") or [{}]
            message = transitions[-1].get("StatusMessage", "")
            print(f"{name}: {status[0]} / {status[1]}" + (f": {message}" if message else ""), flush=True)
            seen = status
        if status[0] in FINAL_STATUSES:
            reason = job.get("FailureReason")
            if reason:
                print(f"{name}: {reason}")
            return status[0]
        sleep(poll_s)


def submit(request: Mapping[str, Any], client: Any, wait: bool, poll_s: float = 30) -> int:
    """Create the job; with `wait`, follow it to its end and return non-zero unless it completed."""
    from grpo_rlvr.aws_api import console_links

    arn = client.create_training_job(**request)["TrainingJobArn"]
    print(arn, flush=True)
    if not wait:
        return 0
    name = request["TrainingJobName"]
    try:
        status = follow(client, name, console_links(client.meta.region_name, name), poll_s)
    except KeyboardInterrupt:
        print(
            f"{name}: no longer followed; the job goes on (stop it: aws sagemaker stop-training-job "
            f"--training-job-name {name})"
        )
        return 130
    return 0 if status == "Completed" else 1
