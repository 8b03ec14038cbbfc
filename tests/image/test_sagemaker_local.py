"""The built image under the SageMaker Python SDK's local mode, v3 (ModelTrainer) and v2 (Estimator), one
and two instances each, and scripts/launch_sagemaker.py's request for the same job.

Each SDK runs in its own environment (tests/image/sdk_local_job.py) and drives `docker compose` itself:
its config files, compose file, network and artifact collection are its own code, not ours. The two
differ where it matters to the image: v3 passes no command and json.dumps each value; v2 passes `train`,
sends Python's str() of each value ("True", "['a', 'b']", "{'k': 'v'}"), names hosts
`algo-1-<random>` and takes `file://` inputs.
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
import yaml
from clients import DOCKER, IMAGE, ROOT, client_venv, run_step

from grpo_rlvr import sagemaker

pytestmark = pytest.mark.image

MAX_STEPS = 2
SDKS = ("3", "2")
# The smoke recipe as a user hands it to an SDK: typed Python values, lists and a mapping among them.
HYPERPARAMETERS: dict[str, Any] = {
    "recipe": "smoke-cpu",
    "max_steps": MAX_STEPS,
    "save_steps": MAX_STEPS,
    "num_shots": 0,
    "learning_rate": 0.0001,
    "use_peft": True,
    "rewards": ["gsm8k_format", "gsm8k_correctness"],
    "lora_target_modules": ["q_proj", "v_proj"],
    # A mapping whose text holds the separators a naive `key=value,...` encoding would split on, and
    # a quote that makes Python's str() switch to double quotes.
    "prompt_format": {"solution_prefix": "First the facts, then the steps: one at a time. Let's see."},
}
TWO_HOST_SIZES = {"per_device_train_batch_size": 4, "num_generations": 2, "max_completion_length": 16}
TRAIN_ROWS = 64
MODEL_FILES = {"run_summary.json", "config.json", "model.safetensors", "adapter/adapter_model.safetensors"}
HYPERPARAMETER_LOG = re.compile(r"grpo-rlvr launch INFO hyperparameters: (\{.*\})\s*$")


@dataclass
class Job:
    result: dict[str, Any]
    output: str
    hosts: list[str]  # as the SDK named them in its compose file, in rank order

    def host_lines(self, host: str) -> list[str]:
        """Lines of one container, as compose prefixes them (`algo-1-1  | ...`; v2 names its containers
        `<random>-algo-1-<random>`)."""
        prefix = re.compile(rf"^(?:[a-z0-9]+-)?{re.escape(host)}(?:-\d+)?\s+\| ?")
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


def sdk_python(sdk: str) -> Path:
    return client_venv("sdk" if sdk == "3" else f"sdk{sdk}")


@pytest.fixture(scope="module")
def compose() -> None:
    """The SDK needs Compose v2 (or docker-compose); `make image-test` provides the plugin."""
    run_step("sagemaker local: docker compose version", [DOCKER, "compose", "version"], timeout=60)


def _compose_files(root: Path) -> list[Path]:
    """v3 writes its compose file in the root, v2 in a fresh folder under it."""
    return sorted(root.glob("docker-compose.yaml")) + sorted(root.glob("*/docker-compose.yaml"))


def _run_job(sdk: str, tmp: Path, instances: int, hyperparameters: dict[str, Any]) -> Job:
    """One local-mode job of SDK `sdk` over a train channel of GSM8K rows; its containers and network go."""
    channel = tmp / "train"
    channel.mkdir(parents=True)
    rows = (Path(sagemaker.__file__).parent / "gsm8k_data" / "train.jsonl").read_text().splitlines()
    (channel / "train.jsonl").write_text("\n".join(rows[:TRAIN_ROWS]) + "\n")
    root = tmp / f"job{instances}"  # a fresh local_container_root: the SDK clears parts of it
    command = [
        str(sdk_python(sdk)), str(ROOT / "tests" / "image" / "sdk_local_job.py"), "--sdk", sdk,
        "--image", IMAGE, "--instances", str(instances), "--root", str(root), "--train", str(channel),
        "--hyperparameters", json.dumps(hyperparameters),
    ]  # fmt: skip
    label = f"sagemaker local: SDK v{sdk} training job ({instances} instances)"
    try:
        done = run_step(label, command, timeout=1800)
    finally:
        for compose_file in _compose_files(root):  # the SDK leaves its exited containers and network behind
            run_step(
                "sagemaker local: docker compose down (the SDK's leftovers)",
                [DOCKER, "compose", "-f", str(compose_file), "down", "--remove-orphans"],
                timeout=900,
            )
    (compose_file,) = _compose_files(root)
    hosts = sorted(yaml.safe_load(compose_file.read_text())["services"])
    return Job(json.loads(done.stdout.strip().splitlines()[-1]), done.stdout + done.stderr, hosts)


def _summary(job: Job) -> dict[str, Any]:
    members = job.model_members()
    missing = MODEL_FILES - set(members)
    assert not missing, f"sagemaker local: model.tar.gz lacks {sorted(missing)}; it holds {sorted(members)}"
    return json.loads(members["run_summary.json"])


@pytest.fixture(scope="module", params=SDKS, ids=[f"sdk-v{v}" for v in SDKS])
def one_instance(
    request: pytest.FixtureRequest, compose: None, tmp_path_factory: pytest.TempPathFactory
) -> Job:
    return _run_job(request.param, tmp_path_factory.mktemp(f"sdk{request.param}-1"), 1, HYPERPARAMETERS)


def test_one_instance_trains_and_returns_the_model(one_instance: Job) -> None:
    summary = _summary(one_instance)
    assert summary["status"] == "completed"
    assert summary["global_step"] == MAX_STEPS
    assert summary["data"]["train_rows"] == TRAIN_ROWS
    # Lists, booleans and the mapping arrived as the values the user gave the SDK, whichever encoding it used.
    (host,) = one_instance.hosts
    assert one_instance.decoded_hyperparameters(host) == HYPERPARAMETERS
    config = summary["config"]
    assert config["rewards"]["rewards"] == HYPERPARAMETERS["rewards"]
    assert config["data"]["prompt_format"] == HYPERPARAMETERS["prompt_format"]
    assert config["model"]["lora_target_modules"] == HYPERPARAMETERS["lora_target_modules"]
    assert "failure" not in one_instance.output_names()


@pytest.mark.parametrize("sdk", SDKS, ids=[f"sdk-v{v}" for v in SDKS])
def test_two_instances_train_in_step(sdk: str, compose: None, tmp_path: Path) -> None:
    """The two hosts on the SDK's compose network find each other by name and train over gloo."""
    job = _run_job(sdk, tmp_path, 2, {**HYPERPARAMETERS, **TWO_HOST_SIZES})
    suffix = "" if sdk == "3" else "-[a-z0-9]{5}"  # v2 adds a random suffix
    assert len(job.hosts) == 2, job.hosts
    assert all(re.fullmatch(f"algo-{i + 1}{suffix}", host) for i, host in enumerate(job.hosts)), job.hosts
    addresses = []
    for rank, host in enumerate(job.hosts):
        text = "\n".join(job.host_lines(host))
        assert f"this host {host} has machine rank {rank}" in text
        assert f"--num_processes 2 --num_machines 2 --machine_rank {rank}" in text
        # v3's resourceconfig.json names `ethwe`, which these containers lack: gloo is left to find eth0.
        # v2 names `eth0`, which they have.
        assert ('"GLOO_SOCKET_IFNAME": "eth0"' in text) == (sdk == "2")
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
    """The CreateTrainingJob request for the same job carries the SDK v3's encoding (v2's str() differs as
    text), and the image decodes it to what the SDK route delivered."""
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
    sent = one_instance.result["sdk_hyperparameters"]
    (host,) = one_instance.hosts
    if host == "algo-1":  # v3: the very strings the SDK sent
        assert request["HyperParameters"] == sent
    else:  # v2: Python's str() of every value
        assert sent == {key: str(value) for key, value in HYPERPARAMETERS.items()}
    decode = (
        "import json, sys; from grpo_rlvr.sagemaker import decode_hyperparameters; "
        "print(json.dumps([decode_hyperparameters(h) for h in json.load(sys.stdin)]))"
    )
    decoded = run_step(
        "image: decode_hyperparameters of the launch request and of the SDK's",
        [DOCKER, "run", "--rm", "-i", "--entrypoint", "python", IMAGE, "-c", decode],
        input_text=json.dumps([request["HyperParameters"], sent]),
        timeout=300,
    )
    from_request, from_sdk = json.loads(decoded.stdout)
    assert from_request == from_sdk == one_instance.decoded_hyperparameters(host) == HYPERPARAMETERS
