#!/usr/bin/env python3
"""Start a SageMaker training job that runs our ECR image as is (no code upload).

The request is built by `build_request` and sent with boto3's CreateTrainingJob, so `--dry-run` prints
exactly what would be sent (tests validate it against botocore's service model). The SageMaker Python
SDK v3 `ModelTrainer` is not used: `sagemaker` 3.x needs protobuf<7 and cannot share an environment with
our pinned protobuf 7.36.2, and with no source code to package it would only wrap this same request.

`--hp KEY=VALUE` values read as `grpo-rlvr train` reads `key=value` (`grpo_rlvr.overrides`: YAML
values, so `--hp rewards=[a,b]` is a list) and go as SageMaker's strings (`encode_hyperparameters`).
Before any call, and in `--dry-run`, the request is checked as AWS would check it (botocore's service
model: role ARN form, instance type, S3 URIs, lengths, ranges) and the recipe as the job will; every
problem is one `error:` line and exit 2. Secrets never enter the request: hyperparameters and
environment entries that look like credentials (`grpo_rlvr.redact`, the rule the container masks
with) and URLs carrying a user and password are refused. `--wait` follows the job, printing each status
change and the console and log links.
A Hugging Face token for gated models stays in AWS Secrets Manager; the job carries only the
secret's id (HF_TOKEN_SECRET_ID) and the image's entrypoint reads the token into its own environment.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

# A plain checkout runs this script uninstalled: the package's job modules need only the standard
# library and PyYAML (botocore, when installed, for the checks).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from grpo_rlvr.help_format import HelpFormatter
from grpo_rlvr.sagemaker_job import JobRequestError, build_request, check_region, submit


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad value in one line (no usage block), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"launch_sagemaker: error: {message}\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of hours, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        description=__doc__,
        formatter_class=HelpFormatter,
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
    parser.add_argument("--instance-count", type=positive_int, default=1, help="hosts; >1 trains across them")
    parser.add_argument("--volume-size", type=positive_int, default=100, help="GB of EBS per instance")
    parser.add_argument("--max-run-hours", type=hours, default=24.0, help="stop the job after this long")
    parser.add_argument("--spot", action=argparse.BooleanOptionalAction, default=True, help="managed spot")
    parser.add_argument("--max-wait-hours", type=hours, default=48.0, help="spot: run time plus waiting")
    parser.add_argument("--mlflow-tracking-arn", help="SageMaker MLflow tracking server ARN (or any URI)")
    parser.add_argument("--mlflow-experiment", help="MLflow experiment name")
    parser.add_argument("--hf-token-secret-id", help="Secrets Manager id of a Hugging Face token")
    parser.add_argument("--region", help="AWS region (default: the AWS configuration's, e.g. AWS_REGION)")
    parser.add_argument("--wait", action="store_true", help="wait for the job to finish")
    parser.add_argument("--dry-run", action="store_true", help="print the request as JSON, call nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        request = build_request(args)
        if args.region:
            check_region(args.region)
    except ValueError as err:  # JobRequestError, ConfigError, ContractError, a --hp or --env not KEY=VALUE
        print(f"launch_sagemaker: error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(request, indent=2))
        return 0
    return send(request, args.region, args.wait)


def send(request: dict[str, Any], region: str | None, wait: bool) -> int:
    """Submit with boto3; what AWS or the local AWS setup refuses is one line, exit 2."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

    try:
        client = boto3.client("sagemaker", region_name=region)
        check_region(client.meta.region_name)
        return submit(request, client, wait)
    except NoRegionError:
        print("launch_sagemaker: error: no AWS region: give --region or set AWS_REGION", file=sys.stderr)
    except (JobRequestError, BotoCoreError, ClientError) as err:  # no credentials, access denied, ...
        print(f"launch_sagemaker: error: {err}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
