"""A SageMaker Python SDK local-mode training job, run by the SDK's own environment (not the project's).

`--sdk 3`: `ModelTrainer(training_mode=Mode.LOCAL_CONTAINER)`; `--sdk 2`: `Estimator(instance_type="local")`
with a `LocalSession`, as most existing SageMaker code still does. Either runs the image with `docker
compose`, as on a user's laptop. Offline: telemetry is switched off in the SDK's own config, and dummy
credentials and a region keep botocore from probing the instance-metadata address. The last line printed
is a JSON object: the hyperparameters as the SDK encodes them and where it put model.tar.gz and
output.tar.gz. A failure prints which SDK step failed and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

OFFLINE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
TELEMETRY_OFF = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
# The SDK v2 needs a role ARN of the right form even in local mode; nothing checks that it exists.
DUMMY_ROLE = "arn:aws:iam::123456789012:role/SageMakerLocal"


class Step:
    """The SDK step under way, named in the failure message."""

    name = "start"


def run_v3(args: argparse.Namespace, hyperparameters: dict[str, Any], step: Step) -> dict[str, Any]:
    config = args.root.parent / f"{args.root.name}-sdk-config.yaml"  # JSON is YAML too
    config.write_text(json.dumps(TELEMETRY_OFF), encoding="utf-8")
    os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(config)
    step.name = "import sagemaker.train"
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData
    from sagemaker.train.model_trainer import Mode
    from sagemaker.train.utils import safe_serialize

    step.name = "ModelTrainer()"
    trainer = ModelTrainer(
        training_image=args.image,
        training_mode=Mode.LOCAL_CONTAINER,
        compute=Compute(instance_type="local_cpu", instance_count=args.instances),
        hyperparameters=hyperparameters,
        local_container_root=str(args.root),
        base_job_name=args.job_name,
    )
    step.name = "ModelTrainer.train"
    trainer.train(
        input_data_config=[InputData(channel_name="train", data_source=str(args.train.resolve()))],
        wait=True,
    )
    artifacts = args.root / "compressed_artifacts"
    return {
        "sdk_hyperparameters": {key: safe_serialize(value) for key, value in hyperparameters.items()},
        "model_tar": str(artifacts / "model.tar.gz"),
        "output_tar": str(artifacts / "output.tar.gz"),
    }


def run_v2(args: argparse.Namespace, hyperparameters: dict[str, Any], step: Step) -> dict[str, Any]:
    step.name = "import sagemaker (v2)"
    from sagemaker.estimator import Estimator
    from sagemaker.local import LocalSession
    from sagemaker.utils import to_string

    step.name = "LocalSession()"
    session = LocalSession(sagemaker_config=TELEMETRY_OFF)
    # container_root keeps the SDK's compose file and config folders under this job's fresh root.
    session.config = {"local": {"local_code": True, "container_root": str(args.root)}}
    step.name = "Estimator()"
    estimator = Estimator(
        image_uri=args.image,
        role=DUMMY_ROLE,
        instance_count=args.instances,
        instance_type="local",
        sagemaker_session=session,
        hyperparameters=hyperparameters,
        output_path=(args.root / "output").resolve().as_uri(),
        base_job_name=args.job_name,
    )
    step.name = "Estimator.fit"
    estimator.fit({"train": args.train.resolve().as_uri()}, wait=True)
    model_tar = Path(estimator.model_data.removeprefix("file://"))
    return {
        "sdk_hyperparameters": {str(key): to_string(value) for key, value in hyperparameters.items()},
        "model_tar": str(model_tar),
        "output_tar": str(model_tar.with_name("output.tar.gz")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sdk", choices=("2", "3"), default="3", help="the SDK's major version")
    parser.add_argument("--image", required=True)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--root", type=Path, required=True, help="a fresh folder for the SDK's files")
    parser.add_argument("--train", type=Path, required=True, help="folder for the train channel")
    parser.add_argument("--hyperparameters", required=True, help="JSON object of typed values")
    parser.add_argument("--job-name", default="grpo-rlvr-local")
    args = parser.parse_args()
    hyperparameters = json.loads(args.hyperparameters)
    args.root.mkdir(parents=True, exist_ok=True)
    os.environ.update(OFFLINE_ENV)
    step = Step()
    try:
        result = (run_v2 if args.sdk == "2" else run_v3)(args, hyperparameters, step)
    except Exception:
        print(traceback.format_exc(), file=sys.stderr)
        print(
            f"sagemaker local: SDK v{args.sdk} {step.name} ({args.instances} instance(s)) failed: "
            f"{sys.exc_info()[1]}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
