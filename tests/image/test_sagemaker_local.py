"""The built image under the SageMaker Python SDK's local mode (v3 ModelTrainer), one and two instances,
and scripts/launch_sagemaker.py's request for the same job.

The SDK runs in its own environment (tests/image/sdk_local_job.py) and drives `docker compose` itself:
its config files, compose file, network and artifact collection are its own code, not ours.
"""

from __future__ import annotations

import json
import re
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clients import DOCKER, IMAGE, ROOT, client_venv, run_step

from grpo_rlvr import sagemaker

pytestmark = pytest.mark.image

MAX_STEPS = 2
# The smoke recipe as a user hands it to ModelTrainer: typed Python values, lists and a mapping among them.
HYPERPARAMETERS: dict[str, Any] = {
    "recipe": "smoke-cpu",
    "max_steps": MAX_STEPS,
    "save_steps": MAX_STEPS,
    "num_shots": 0,
    "learning_rate": 0.0001,
    "use_peft": True,
    "rewards": ["gsm8k_format", "gsm8k_correctness"],
    "lora_target_modules": ["q_proj", "v_proj"],
    # A mapping whose text holds the separators a naive `key=value,...` encoding would split on.
    "prompt_format": {"solution_prefix": "First the facts, then the steps: one at a time."},
}
TWO_HOST_SIZES = {"per_device_train_batch_size": 4, "num_generations": 2, "max_completion_length": 16}
TRAIN_ROWS = 64
MODEL_FILES = {"run_summary.json", "config.json", "model.safetensors", "adapter/adapter_model.safetensors"}
HYPERPARAMETER_LOG = re.compile(r"grpo-rlvr launch INFO hyperparameters: (\{.*\})\s*$")


@dataclass
class Job:
    result: dict[str, Any]
    output: str

    def host_lines(self, host: str) -> list[str]:
        """Lines of one container, as compose prefixes them (`algo-1-1  | ...`)."""
        prefix = re.compile(rf"^{re.escape(host)}-\d+\s+\| ?")
        return [prefix.sub("", line) for line in self.output.splitlines() if prefix.match(line)]

    def decoded_hyperparameters(self, host: str) -> dict[str, Any]:
        """What the launcher in the container decoded from the SDK's hyperparameters.json."""
        found = [m.group(1) for line in self.host_lines(host) if (m := HYPERPARAMETER_LOG.search(line))]
        assert len(found) == 1, f"sagemaker local: no hyperparameters line from {host}"
        return json.loads(found[0])

    def model_members(self) -> dict[str, bytes]:
        with tarfile.open(self.result["model_tar"]) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}

    def output_names(self) -> set[str]:
        with tarfile.open(self.result["output_tar"]) as tar:
            return set(tar.getnames())


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    return client_venv("sdk")


@pytest.fixture(scope="module")
def compose() -> None:
    """The SDK needs Compose v2 (or docker-compose); `make image-test` provides the plugin."""
    run_step("sagemaker local: docker compose version", [DOCKER, "compose", "version"], timeout=60)


def _run_job(sdk_python: Path, tmp: Path, instances: int, hyperparameters: dict[str, Any]) -> Job:
    """One local-mode ModelTrainer job over a train channel of GSM8K rows; its containers and network go."""
    channel = tmp / "train"
    channel.mkdir(parents=True)
    rows = (Path(sagemaker.__file__).parent / "gsm8k_data" / "train.jsonl").read_text().splitlines()
    (channel / "train.jsonl").write_text("\n".join(rows[:TRAIN_ROWS]) + "\n")
    root = tmp / f"job{instances}"  # a fresh local_container_root: the SDK clears parts of it
    command = [
        str(sdk_python), str(ROOT / "tests" / "image" / "sdk_local_job.py"),
        "--image", IMAGE, "--instances", str(instances), "--root", str(root), "--train", str(channel),
        "--hyperparameters", json.dumps(hyperparameters),
    ]  # fmt: skip
    try:
        done = run_step(f"sagemaker local: ModelTrainer.train ({instances} instances)", command, timeout=1800)
    finally:
        compose_file = root / "docker-compose.yaml"
        if compose_file.is_file():  # the SDK leaves its exited containers and network behind
            run_step(
                "sagemaker local: docker compose down (the SDK's leftovers)",
                [DOCKER, "compose", "-f", str(compose_file), "down", "--remove-orphans"],
                timeout=900,
            )
    return Job(json.loads(done.stdout.strip().splitlines()[-1]), done.stdout + done.stderr)


def _summary(job: Job) -> dict[str, Any]:
    members = job.model_members()
    missing = MODEL_FILES - set(members)
    assert not missing, f"sagemaker local: model.tar.gz lacks {sorted(missing)}; it holds {sorted(members)}"
    return json.loads(members["run_summary.json"])


@pytest.fixture(scope="module")
def one_instance(sdk_python: Path, compose: None, tmp_path_factory: pytest.TempPathFactory) -> Job:
    return _run_job(sdk_python, tmp_path_factory.mktemp("sdk1"), 1, HYPERPARAMETERS)


def test_one_instance_trains_and_returns_the_model(one_instance: Job) -> None:
    summary = _summary(one_instance)
    assert summary["status"] == "completed"
    assert summary["global_step"] == MAX_STEPS
    assert summary["data"]["train_rows"] == TRAIN_ROWS
    # Lists and the mapping arrived as the values the user gave ModelTrainer.
    assert one_instance.decoded_hyperparameters("algo-1") == HYPERPARAMETERS
    config = summary["config"]
    assert config["rewards"]["rewards"] == HYPERPARAMETERS["rewards"]
    assert config["data"]["prompt_format"] == HYPERPARAMETERS["prompt_format"]
    assert config["model"]["lora_target_modules"] == HYPERPARAMETERS["lora_target_modules"]
    assert "failure" not in one_instance.output_names()


def test_two_instances_train_in_step(sdk_python: Path, compose: None, tmp_path: Path) -> None:
    """algo-1 and algo-2 on the SDK's compose network find each other by name and train over gloo."""
    job = _run_job(sdk_python, tmp_path, 2, {**HYPERPARAMETERS, **TWO_HOST_SIZES})
    addresses = []
    for rank, host in enumerate(("algo-1", "algo-2")):
        text = "\n".join(job.host_lines(host))
        assert f"this host {host} has machine rank {rank}" in text
        assert f"--num_processes 2 --num_machines 2 --machine_rank {rank}" in text
        # resourceconfig.json names `ethwe`, which these containers lack: gloo is left to find eth0.
        assert "GLOO_SOCKET_IFNAME" not in text
        assert f"process {rank} of 2 trained to step {MAX_STEPS}" in text
        addresses += re.findall(r"--main_process_ip (\d+\.\d+\.\d+\.\d+)", text)
    assert len(addresses) == 2 and addresses[0] == addresses[1]  # both resolved algo-1 to one address
    summary = _summary(job)
    assert summary["global_step"] == MAX_STEPS
    assert "failure" not in job.output_names()


def _launch_hp_args(values: dict[str, Any]) -> list[str]:
    """`--hp KEY=VALUE` as a user types them: JSON for lists, mappings, numbers and booleans."""
    args = []
    for key, value in values.items():
        if key != "recipe":
            args += ["--hp", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return args


def test_launch_script_request_matches_the_sdk_job(one_instance: Job) -> None:
    """The CreateTrainingJob request for the same job carries the SDK's encoding, and the image decodes it
    to what the SDK route delivered."""
    command = [
        sys.executable, str(ROOT / "scripts" / "launch_sagemaker.py"), "--dry-run",
        "--image-uri", IMAGE, "--role", "arn:aws:iam::123456789012:role/SageMakerExecution",
        "--train", "s3://bucket/gsm8k/train/", "--output-path", "s3://bucket/runs/",
        "--job-name", "grpo-rlvr-local", "--instance-type", "ml.m5.xlarge", "--instance-count", "1",
        "--recipe", HYPERPARAMETERS["recipe"], *_launch_hp_args(HYPERPARAMETERS),
    ]  # fmt: skip
    request = json.loads(run_step("launch_sagemaker.py --dry-run", command, timeout=120).stdout)
    assert request["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train"]
    assert request["HyperParameters"] == one_instance.result["sdk_hyperparameters"]
    decode = (
        "import json, sys; from grpo_rlvr.sagemaker import decode_hyperparameters; "
        "print(json.dumps(decode_hyperparameters(json.load(sys.stdin))))"
    )
    decoded = run_step(
        "image: decode_hyperparameters of the launch request",
        [DOCKER, "run", "--rm", "-i", "--entrypoint", "python", IMAGE, "-c", decode],
        input_text=json.dumps(request["HyperParameters"]),
        timeout=300,
    )
    assert json.loads(decoded.stdout) == one_instance.decoded_hyperparameters("algo-1") == HYPERPARAMETERS
