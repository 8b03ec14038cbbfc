#!/usr/bin/env python3
"""Write the SageMaker config JSONs into a local /opt/ml-shaped folder, as a training job would see them.

`make data` runs `grpo-rlvr prepare` into OPT_ML/input/data/{train,val} and then this script, so
`docker compose up train` mounts a tree the launcher reads exactly as on SageMaker: hyperparameters
are the strings scripts/launch_sagemaker.py sends (`--hp` read the same way), one host `algo-1`,
and one inputdataconfig entry per channel folder present.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# A plain checkout runs this script uninstalled: the modules it needs want only PyYAML.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from grpo_rlvr.help_format import HelpFormatter
from grpo_rlvr.sagemaker import DEFAULT_HOST, Paths
from grpo_rlvr.sagemaker_job import check_no_secrets, check_recipe, hyperparameters

CHANNELS = ("train", "val", "rewards")


def resource_config(instance_type: str) -> dict[str, Any]:
    """SageMaker's resourceconfig.json for a one-host job."""
    return {
        "current_host": DEFAULT_HOST,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": [DEFAULT_HOST],
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": instance_type,
                "hosts": [DEFAULT_HOST],
            }
        ],
        "network_interface_name": "eth0",
    }


def input_data_config(data_dir: Path) -> dict[str, dict[str, str]]:
    """One entry per channel folder that exists, in the File mode the launcher expects."""
    return {
        name: {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
        for name in CHANNELS
        if (data_dir / name).is_dir()
    }


def write_config(opt_ml: Path, hp: dict[str, str], instance_type: str) -> list[Path]:
    """Write the three JSONs; refuse when there is no train channel, as SageMaker would fail the job."""
    paths = Paths(opt_ml)
    channels = input_data_config(paths.data_dir)
    if "train" not in channels:
        raise FileNotFoundError(f"{paths.data_dir / 'train'} is missing: run `grpo-rlvr prepare` first")
    config_dir = paths.config_dir
    config_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "hyperparameters.json": hp,
        "resourceconfig.json": resource_config(instance_type),
        "inputdataconfig.json": channels,
    }
    for name, payload in files.items():
        (config_dir / name).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    for folder in (paths.model_dir, paths.checkpoint_dir, paths.output_data_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return [config_dir / name for name in files]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--opt-ml", type=Path, default=Path("opt_ml"), help="the local /opt/ml folder")
    parser.add_argument("--recipe", default="qwen2.5-0.5b-gsm8k", help="recipe name (hyperparameter)")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--instance-type", default="local_gpu", help="as SDK local mode reports it")
    parser.add_argument("--check", action="store_true", help="only validate the recipe and overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        hp = hyperparameters(args.recipe, args.hp)
        check_no_secrets("hyperparameter", hp)
        check_recipe(args.recipe, args.hp)
        if args.check:
            return 0
        written = write_config(args.opt_ml, hp, args.instance_type)
    except (ValueError, FileNotFoundError) as err:
        print(f"local_opt_ml: error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
