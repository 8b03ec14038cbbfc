"""scripts/push_ecr.sh against a real registry on 127.0.0.1 (Debian's docker-registry) with its ECR API calls
(describe/create repository, get-login-password) answered by a local AWS API emulator (moto server).

The script finds the emulator through the AWS CLI's standard AWS_ENDPOINT_URL and the registry through
its --registry option: everything else is the path a user's push takes.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from clients import DOCKER, IMAGE, ROOT, client_env, client_venv, free_port, run_step, serving

pytestmark = pytest.mark.image

REGION = "us-east-1"
ACCOUNT = "123456789012"  # the emulator's default account
REPOSITORY = "grpo-rlvr-push-test"
TAG = "push-test"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
LAYER_STATUS = re.compile(r"^([0-9a-f]{12}): (Pushed|Layer already exists|Mounted from .+)$", re.M)
PUSH_TIMEOUT_S = 3600  # a ~10 GB image: every layer gzipped on the CPUs at hand


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server on a free loopback port: the AWS API endpoint for the AWS CLI."""
    python = client_venv("push")
    port = free_port()
    command = [str(python.parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with serving("push: moto_server", command, port, tmp_path_factory.mktemp("moto") / "moto.log"):
        yield f"http://127.0.0.1:{port}"


def _registry_binary() -> str:
    found = shutil.which("docker-registry")
    if found:
        return found
    run_step("push: apt-get update", ["apt-get", "update", "-qq"], timeout=600)
    run_step(
        "push: apt-get install docker-registry",
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker-registry"],
        timeout=600,
    )
    return shutil.which("docker-registry") or "/usr/bin/docker-registry"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Docker registry (distribution) on a free loopback port, with its own config and storage."""
    binary = _registry_binary()
    folder = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    with serving("push: docker-registry", [binary, "serve", str(config)], port, folder / "registry.log"):
        yield f"127.0.0.1:{port}"


def _push(env: dict[str, str], registry: str, label: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(ROOT / "scripts" / "push_ecr.sh"), "--image", IMAGE, "--repository", REPOSITORY, "--tag", TAG,
        "--region", REGION, "--registry", registry,
    ]  # fmt: skip
    return run_step(
        f"push: {label} (scripts/push_ecr.sh to {registry})", command, env=env, timeout=PUSH_TIMEOUT_S
    )


def _layer_statuses(output: str) -> dict[str, str]:
    """The final status docker push printed for each layer."""
    return dict(LAYER_STATUS.findall(output))


def _image_layers(reference: str) -> int:
    layers = run_step(
        "push: docker image inspect",
        [DOCKER, "image", "inspect", "--format", "{{json .RootFS.Layers}}", reference],
        timeout=60,
    )
    return len(set(json.loads(layers.stdout)))


def _registry_digest(registry: str) -> str:
    request = urllib.request.Request(
        f"http://{registry}/v2/{REPOSITORY}/manifests/{TAG}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["Docker-Content-Digest"]


def test_push_pull_back_and_push_again(emulator: str, registry: str, tmp_path: Path) -> None:
    bin_dir = client_venv("push").parent
    env = client_env(
        {
            **DUMMY_CREDENTIALS,
            "AWS_ENDPOINT_URL": emulator,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
            "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        }
    )
    env["PATH"] = f"{bin_dir}:{env['PATH']}"  # the pinned AWS CLI
    uri = f"{registry}/{REPOSITORY}:{TAG}"
    try:
        started = time.monotonic()
        first = _push(env, registry, "first push")
        print(f"push: first push took {time.monotonic() - started:.0f} s")
        assert first.stdout.strip().splitlines()[-1] == uri
        assert f"creating ECR repository {REPOSITORY}" in first.stderr
        ecr = boto3.client(
            "ecr",
            endpoint_url=emulator,
            region_name=REGION,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        (repo,) = ecr.describe_repositories(repositoryNames=[REPOSITORY])["repositories"]
        assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
        # docker login got the emulator's token, passed on from get-login-password.
        auths = json.loads((tmp_path / "docker-config" / "config.json").read_text())["auths"]
        assert base64.b64decode(auths[registry]["auth"]).decode() == f"AWS:{ACCOUNT}-auth-token"

        (pushed,) = re.findall(rf"{TAG}: digest: (sha256:[0-9a-f]{{64}})", first.stderr)
        assert _registry_digest(registry) == pushed
        layers = _image_layers(IMAGE)
        assert len(_layer_statuses(first.stderr)) == layers

        started = time.monotonic()
        second = _push(env, registry, "second push")
        print(f"push: second push took {time.monotonic() - started:.0f} s")
        assert "creating ECR repository" not in second.stderr
        statuses = _layer_statuses(second.stderr)
        assert len(statuses) == layers and set(statuses.values()) == {"Layer already exists"}
        assert re.findall(rf"{TAG}: digest: (sha256:[0-9a-f]{{64}})", second.stderr) == [pushed]

        run_step("push: docker rmi (the pushed tag)", [DOCKER, "rmi", uri], env=env, timeout=120)
        pulled = run_step("push: docker pull", [DOCKER, "pull", uri], env=env, timeout=PUSH_TIMEOUT_S)
        assert f"Digest: {pushed}" in pulled.stdout
        digests = run_step(
            "push: docker image inspect (pulled)",
            [DOCKER, "image", "inspect", "--format", "{{json .RepoDigests}}", uri],
            timeout=60,
        )
        assert f"{registry}/{REPOSITORY}@{pushed}" in json.loads(digests.stdout)
    finally:
        subprocess.run([DOCKER, "rmi", uri], capture_output=True, timeout=120)
