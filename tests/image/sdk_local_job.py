"""A SageMaker Python SDK v3 local-mode training job, run by the SDK's own environment (not the project's).

`ModelTrainer(training_mode=Mode.LOCAL_CONTAINER)` runs the image with `docker compose`, as on a user's
laptop. Offline: telemetry is switched off in the SDK's own config file, and dummy credentials and a
region keep botocore from probing the instance-metadata address. The last line printed is a JSON object:
the hyperparameters as the SDK encodes them and where it put model.tar.gz. A failure prints which SDK
step failed and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

OFFLINE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
TELEMETRY_OFF = "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"


def fail(step: str, instances: int) -> int:
    print(traceback.format_exc(), file=sys.stderr)
    print(f"sagemaker local: {step} ({instances} instance(s)) failed: {sys.exc_info()[1]}", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", required=True)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--root", type=Path, required=True, help="fresh local_container_root")
    parser.add_argument("--train", type=Path, required=True, help="folder for the train channel")
    parser.add_argument("--hyperparameters", required=True, help="JSON object of typed values")
    parser.add_argument("--job-name", default="grpo-rlvr-local")
    args = parser.parse_args()
    hyperparameters = json.loads(args.hyperparameters)

    args.root.mkdir(parents=True, exist_ok=True)
    config = args.root.parent / f"{args.root.name}-sdk-config.yaml"
    config.write_text(TELEMETRY_OFF, encoding="utf-8")
    os.environ.update(OFFLINE_ENV, SAGEMAKER_USER_CONFIG_OVERRIDE=str(config))

    step = "import sagemaker.train"
    try:
        from sagemaker.train import ModelTrainer
        from sagemaker.train.configs import Compute, InputData
        from sagemaker.train.model_trainer import Mode
        from sagemaker.train.utils import safe_serialize

        step = "ModelTrainer()"
        trainer = ModelTrainer(
            training_image=args.image,
            training_mode=Mode.LOCAL_CONTAINER,
            compute=Compute(instance_type="local_cpu", instance_count=args.instances),
            hyperparameters=hyperparameters,
            local_container_root=str(args.root),
            base_job_name=args.job_name,
        )
        step = "ModelTrainer.train"
        trainer.train(
            input_data_config=[InputData(channel_name="train", data_source=str(args.train.resolve()))],
            wait=True,
        )
    except Exception:
        return fail(step, args.instances)
    result = {
        "sdk_hyperparameters": {key: safe_serialize(value) for key, value in hyperparameters.items()},
        "model_tar": str(args.root / "compressed_artifacts" / "model.tar.gz"),
        "output_tar": str(args.root / "compressed_artifacts" / "output.tar.gz"),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
