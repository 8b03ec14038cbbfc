#!/usr/bin/env python3
"""Start a SageMaker training job that runs our ECR image as is (no code upload).

The request is built by `build_request` and sent with boto3's CreateTrainingJob, so `--dry-run` prints
exactly what would be sent (tests validate it against botocore's service model). The SageMaker Python
SDK v3 `ModelTrainer` is not used: `sagemaker` 3.x needs protobuf<7 and cannot share an environment with
our pinned protobuf 7.36.2, and with no source code to package it would only wrap this same request.

`--hp KEY=VALUE` values read as `grpo-rlvr train` reads `key=value` (`grpo_rlvr.overrides`: YAML
values, so `--hp rewards=[a,b]` is a list) and go as SageMaker's strings (`encode_hyperparameters`).
Secrets never enter the request: hyperparameters, environment entries and URL-valued arguments that
hold a credential anywhere (a secret-named key at any depth of a value, a token-shaped string, a URL's
password; `grpo_rlvr.redact`, the rule the container masks with) are refused.
A Hugging Face token for gated models stays in AWS Secrets Manager; the job carries only the
secret's id (HF_TOKEN_SECRET_ID) and the image's entrypoint reads the token into its own environment.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# These modules need only the standard library and PyYAML: a plain checkout runs this script uninstalled.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from grpo_rlvr.overrides import parse_overrides, split_assignment
from grpo_rlvr.redact import find_secret
from grpo_rlvr.sagemaker import decode_value, encode_hyperparameters

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"


def hyperparameters(recipe: str, items: list[str]) -> dict[str, str]:
    """The recipe and `--hp KEY=VALUE` overrides as the strings a job request carries."""
    return encode_hyperparameters({"recipe": recipe, **parse_overrides(items)})


def check_no_secrets(kind: str, values: Mapping[str, str | None]) -> None:
    """Job requests are readable by anyone with DescribeTrainingJob, so credentials must not be in them:
    not under a secret's name, not shaped like one (a URL's password included), at any depth of a value."""
    for key, value in values.items():
        place = find_secret({key: decode_value(value)})
        if place:
            raise ValueError(
                f"{kind} {place!r} looks like a credential; keep secrets in AWS Secrets Manager and pass the "
                "secret's id instead (e.g. --hf-token-secret-id)"
            )


# The trainer prints each logging step as a dict line, values as strings:
#   {'loss': '0.0123', 'grad_norm': '0.51', ..., 'reward': '0.75', ..., 'step_time': '1.9'}
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


def metric_definitions() -> list[dict[str, str]]:
    """One MetricDefinition per logged key: `'key': 'number'` (the quote before the key keeps
    `loss` from matching `train_loss`)."""
    return [
        {"Name": name, "Regex": f"'{key}': '?(-?[0-9.]+(?:e[-+]?[0-9]+)?)"}
        for name, key in LOGGED_METRICS.items()
    ]


def check_recipe(recipe: str, items: list[str]) -> None:
    """Validate the recipe and overrides as the job's `grpo-rlvr train` will, before anything is paid for.

    Raises the ConfigError train would print. A mistyped recipe name fails before torch and TRL load;
    keys need TRL's settings, so from a plain checkout without the training stack only the job checks them.
    """
    from grpo_rlvr import config
    from grpo_rlvr.cli import quiet_notices
    from grpo_rlvr.sagemaker import check_no_contract_keys

    overrides = parse_overrides(items)
    check_no_contract_keys(overrides)
    config.find_recipe(recipe)
    quiet_notices()
    try:
        from trl import GRPOConfig  # noqa: F401  (trl imports lazily: this loads the training stack)
    except (ImportError, RuntimeError) as err:
        print(f"note: recipe keys are checked when the job starts, not here ({err})", file=sys.stderr)
        return
    config.load_config(recipe, overrides)


def _channel(name: str, s3_uri: str) -> dict[str, Any]:
    if not s3_uri.startswith("s3://"):
        raise ValueError(f"channel {name}: expected an s3:// URI, got {s3_uri!r}")
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


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    """The CreateTrainingJob parameters for the parsed command line."""
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
    uris = ("image_uri", "train", "val", "rewards", "output_path", "checkpoint_s3_uri")
    check_no_secrets("argument", {f"--{name.replace('_', '-')}": getattr(args, name) for name in uris})
    check_recipe(args.recipe, args.hp)

    output_path = args.output_path.rstrip("/")
    named = (("train", args.train), ("val", args.val), ("rewards", args.rewards))
    channels = [_channel(name, uri) for name, uri in named if uri]
    max_run = int(args.max_run_hours * 3600)
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": max_run}
    if args.spot:
        max_wait = int(args.max_wait_hours * 3600)
        if max_wait < max_run:
            raise ValueError("--max-wait-hours must be at least --max-run-hours for managed spot training")
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
    return request


def submit(request: Mapping[str, Any], client: Any, wait: bool) -> int:
    """Create the job; with `wait`, block until it ends and return non-zero unless it completed."""
    arn = client.create_training_job(**request)["TrainingJobArn"]
    print(arn)
    if not wait:
        return 0
    name = request["TrainingJobName"]
    client.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=name, WaiterConfig={"Delay": 60, "MaxAttempts": 10_000}
    )
    job = client.describe_training_job(TrainingJobName=name)
    print(f"{name}: {job['TrainingJobStatus']} {job.get('FailureReason', '')}".rstrip())
    return 0 if job["TrainingJobStatus"] == "Completed" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image-uri", required=True, help="ECR image URI (printed by scripts/push_ecr.sh)")
    parser.add_argument("--role", required=True, help="SageMaker execution role ARN")
    parser.add_argument(
        "--train", help="s3:// prefix of the train channel (default: the GSM8K shipped in the image)"
    )
    parser.add_argument("--val", help="s3:// prefix of the val channel")
    parser.add_argument("--rewards", help="s3:// prefix of the rewards channel (user reward modules)")
    parser.add_argument("--output-path", required=True, help="s3:// prefix for model.tar.gz and output")
    parser.add_argument("--checkpoint-s3-uri", help="default: OUTPUT_PATH/JOB_NAME/checkpoints")
    parser.add_argument(
        "--job-name", default=f"grpo-rlvr-{time.strftime('%Y%m%d-%H%M%S')}", help="default: grpo-rlvr-<time>"
    )
    parser.add_argument("--recipe", default="qwen2.5-0.5b-gsm8k", help="recipe name baked into the image")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="non-secret env")
    parser.add_argument("--instance-type", default="ml.g6e.xlarge", help="training instance type")
    parser.add_argument("--instance-count", type=int, default=1, help="hosts; >1 trains across them")
    parser.add_argument("--volume-size", type=int, default=100, help="GB of EBS per instance")
    parser.add_argument("--max-run-hours", type=float, default=24.0, help="stop the job after this long")
    parser.add_argument("--spot", action=argparse.BooleanOptionalAction, default=True, help="managed spot")
    parser.add_argument("--max-wait-hours", type=float, default=48.0, help="spot: run time plus waiting")
    parser.add_argument("--mlflow-tracking-arn", help="SageMaker MLflow tracking server ARN (or any URI)")
    parser.add_argument("--mlflow-experiment", help="MLflow experiment name")
    parser.add_argument("--hf-token-secret-id", help="Secrets Manager id of a Hugging Face token")
    parser.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    parser.add_argument("--wait", action="store_true", help="wait for the job to finish")
    parser.add_argument("--dry-run", action="store_true", help="print the request as JSON, call nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        request = build_request(args)
    except ValueError as err:
        print(f"launch_sagemaker: error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(request, indent=2))
        return 0
    import boto3

    return submit(request, boto3.client("sagemaker", region_name=args.region), args.wait)


if __name__ == "__main__":
    sys.exit(main())
