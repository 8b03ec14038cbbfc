"""The image, checked without a Docker engine: Dockerfile lint and structure, the lock, push_ecr.sh."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCK = ROOT / "docker" / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|KEY|CREDENTIAL", re.I)


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(text: str) -> dict[str, str]:
    return {_canon(name): version for name, version in PIN.findall(text)}


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(str(ROOT / "Dockerfile"))


def _instructions(dockerfile: DockerfileParser, kind: str) -> list[str]:
    return [i["value"] for i in dockerfile.structure if i["instruction"] == kind]


def _stages(dockerfile: DockerfileParser) -> list[tuple[str, str, list[dict[str, str]]]]:
    """(parent, name, instructions) per stage; an unnamed stage is called by its index."""
    stages: list[tuple[str, str, list[dict[str, str]]]] = []
    for instruction in dockerfile.structure:
        if instruction["instruction"] == "FROM":
            parent, _, name = instruction["value"].partition(" AS ")
            stages.append((parent.strip(), name.strip() or str(len(stages)), []))
        elif stages:
            stages[-1][2].append(instruction)
    return stages


def _shipped(dockerfile: DockerfileParser) -> list[dict[str, str]]:
    """The instructions of the final stage and of the stages it is built FROM (not those it copies from)."""
    by_name = {name: (parent, body) for parent, name, body in _stages(dockerfile)}
    parent, chain = _stages(dockerfile)[-1][0], _stages(dockerfile)[-1][2]
    while parent in by_name:
        parent, body = by_name[parent]
        chain = body + chain
    return chain


def _envs(instructions: list[dict[str, str]]) -> dict[str, str]:
    envs: dict[str, str] = {}
    for instruction in instructions:
        if instruction["instruction"] == "ENV":
            envs |= dict(re.findall(r"(\w+)=(\S*)", instruction["value"]))
    return envs


def test_hadolint_reports_no_errors() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "error", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_is_exec_form_and_default_command_is_train(dockerfile: DockerfileParser) -> None:
    (entrypoint,) = _instructions(dockerfile, "ENTRYPOINT")
    (cmd,) = _instructions(dockerfile, "CMD")
    # tini as PID 1 reaps orphans and forwards SIGTERM to the entrypoint's process group.
    assert json.loads(entrypoint) == ["/usr/bin/tini", "-g", "--", "/usr/local/bin/entrypoint.sh"]
    assert json.loads(cmd) == ["train"]
    copies = _instructions(dockerfile, "COPY")
    assert any(c.split()[-2:] == ["docker/entrypoint.sh", "/usr/local/bin/entrypoint.sh"] for c in copies)


def test_every_base_image_is_pinned(dockerfile: DockerfileParser) -> None:
    """One base, Debian 12 slim by digest, overridable (CI passes a locally made bookworm); other FROMs
    are this file's own stages. No `# syntax=` line: it would make BuildKit fetch a frontend image."""
    stages = _stages(dockerfile)
    names = {name for _, name, _ in stages}
    assert [parent for parent, _, _ in stages if parent not in names] == ["${BASE_IMAGE}"]
    (base,) = [a for a in _instructions(dockerfile, "ARG") if a.startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"BASE_IMAGE=debian:bookworm-slim@sha256:[0-9a-f]{64}", base), base
    assert not (ROOT / "Dockerfile").read_text().lstrip().startswith("# syntax=")


def test_cuda_comes_once_from_the_wheels_and_no_toolchain_ships(dockerfile: DockerfileParser) -> None:
    shipped = _shipped(dockerfile)
    runs = " ".join(i["value"] for i in shipped if i["instruction"] == "RUN")
    assert "build-essential" not in runs and "/opt/uv" not in runs
    assert "build-essential" in " ".join(_instructions(dockerfile, "RUN"))  # only in the builder stage
    assert "/etc/ld.so.conf.d/" in runs and "ldconfig" in runs  # ldd resolves the nvidia-* wheels' libraries
    envs = _envs(shipped)
    assert envs["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert set(envs["NVIDIA_DRIVER_CAPABILITIES"].split(",")) >= {"compute", "utility"}
    assert "nvidia/cuda" not in (ROOT / "Dockerfile").read_text()


def test_flash_attn_is_never_compiled_and_deepspeed_records_cuda(dockerfile: DockerfileParser) -> None:
    runs = _instructions(dockerfile, "RUN")
    lock_installs = [r for r in runs if "-r /opt/grpo-rlvr/requirements.lock" in r]
    assert len(lock_installs) == 2
    assert all("--excludes" in r for r in lock_installs)
    assert "flash-attn" in lock_installs[0] and "--no-build " in lock_installs[0]
    assert "printf 'flash-attn\\n' > /tmp/late.txt" in lock_installs[1]
    assert "DS_ACCELERATOR=cuda" in lock_installs[1] and "DS_BUILD_OPS=0" in lock_installs[1]
    (wheel,) = [r for r in runs if "FLASH_ATTN_WHEEL_URL" in r]
    assert "--require-hashes" in wheel and "FLASH_ATTN_WHEEL_SHA256" in wheel


def test_no_secrets_in_env_or_build_args(dockerfile: DockerfileParser) -> None:
    for kind, values in (("ENV", dockerfile.envs), ("ARG", dockerfile.args)):
        offending = [key for key in values if SECRET_NAME.search(key)]
        assert not offending, f"{kind} {offending}: secrets belong in the runtime environment, not the image"
    text = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"hf_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}", text)


def test_sagemaker_directories_are_created_empty(dockerfile: DockerfileParser) -> None:
    made = " ".join(r for r in _instructions(dockerfile, "RUN") if "mkdir" in r).split()
    for sub in ("input/config", "input/data", "model", "checkpoints", "output/data"):
        assert f"/opt/ml/{sub}" in made
    # Nothing is copied into /opt/ml: data and config come from the mount or from SageMaker.
    assert not [c for c in _instructions(dockerfile, "COPY") if "/opt/ml" in c]


def test_runtime_environment(dockerfile: DockerfileParser) -> None:
    envs = _envs(_shipped(dockerfile))
    assert envs["PYTHONUNBUFFERED"] == "1"
    assert envs["HF_HOME"] == "/cache/hf"
    recipes = envs["GRPO_RLVR_RECIPES"]
    assert f"recipes/ {recipes}/" in _instructions(dockerfile, "COPY")


def test_version_labels_match_the_lock(dockerfile: DockerfileParser) -> None:
    locked = _pins(LOCK.read_text())
    prefix = "io.grpo-rlvr.versions."
    labelled = {k.removeprefix(prefix): v for k, v in dockerfile.labels.items() if k.startswith(prefix)}
    assert {"torch", "vllm", "trl", "transformers", "deepspeed", "flash-attn", "mlflow"} <= set(labelled)
    for package, version in labelled.items():
        assert locked[_canon(package)] == version, package
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert dockerfile.labels["org.opencontainers.image.version"] == version
    assert dockerfile.labels["org.opencontainers.image.title"] == "grpo-rlvr"


def test_lock_agrees_with_pyproject_and_requirements_in() -> None:
    locked = _pins(LOCK.read_text())
    wanted = _pins((ROOT / "docker" / "requirements.in").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, version in _pins("\n".join(project["dependencies"])).items():
        assert wanted.get(name) == version, f"docker/requirements.in and pyproject.toml disagree on {name}"
    for name, version in wanted.items():
        assert locked.get(name) == version, f"{name}: lock has {locked.get(name)}, requirements.in {version}"
    assert "--hash=sha256:" in LOCK.read_text()


def test_lock_is_what_the_resolver_gives_for_linux_py311(tmp_path: Path) -> None:
    """`make lock` re-run from the committed lock (uv keeps valid pins) must reproduce it exactly."""
    out = tmp_path / "requirements.lock"
    shutil.copy(LOCK, out)
    result = subprocess.run(
        ["make", "-s", "lock", f"PY={sys.executable}", f"LOCK={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    fresh, committed = _pins(out.read_text()), _pins(LOCK.read_text())
    assert fresh == committed, {k: (committed.get(k), fresh.get(k)) for k in fresh.keys() ^ committed.keys()}
    assert out.read_text() == LOCK.read_text(), "hashes or provenance changed: run `make lock`"


def test_dockerignore_lets_in_only_what_the_image_copies(dockerfile: DockerfileParser) -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    for copy in [c for c in _instructions(dockerfile, "COPY") if "--from=" not in c]:
        for source in [p for p in copy.split()[:-1] if not p.startswith("--")]:
            top = source.split("/")[0]
            assert top in allowed, f"COPY {source} is excluded by .dockerignore"
            assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"


def _fake_cli(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "$CALLS"\n{body}\n')
    path.chmod(0o755)


@pytest.mark.parametrize("repository_exists", [True, False])
def test_push_ecr_creates_the_repository_only_when_missing(tmp_path: Path, repository_exists: bool) -> None:
    """aws and docker replaced by recorders: the script's own decisions, not AWS, are under test."""
    calls = tmp_path / "calls.txt"
    _fake_cli(
        tmp_path,
        "aws",
        'case "$1 $2" in\n'
        '  "sts get-caller-identity") echo 123456789012 ;;\n'
        f'  "ecr describe-repositories") exit {0 if repository_exists else 254} ;;\n'
        '  "ecr get-login-password") echo not-a-real-password ;;\n'
        "esac",
    )
    _fake_cli(tmp_path, "docker", "cat > /dev/null")
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CALLS": str(calls)}
    result = subprocess.run(
        [str(ROOT / "scripts" / "push_ecr.sh"), "--region", "eu-west-1", "--tag", "abc123"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    uri = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/grpo-rlvr:abc123"
    assert result.stdout.strip().splitlines()[-1] == uri
    recorded = calls.read_text()
    assert ("ecr create-repository" in recorded) is not repository_exists
    assert f"docker tag grpo-rlvr:latest {uri}" in recorded
    assert f"docker push {uri}" in recorded
    assert "not-a-real-password" not in result.stdout + result.stderr + recorded


def test_scripts_answer_help() -> None:
    for command in (
        [str(ROOT / "scripts" / "push_ecr.sh"), "--help"],
        [sys.executable, str(ROOT / "scripts" / "launch_sagemaker.py"), "--help"],
        [sys.executable, str(ROOT / "scripts" / "local_opt_ml.py"), "--help"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), command


def test_shell_scripts_pass_shellcheck() -> None:
    result = subprocess.run(
        [
            str(BIN / "shellcheck"),
            *(str(ROOT / p) for p in ("docker/entrypoint.sh", "scripts/push_ecr.sh", "bench/gpu_check.sh")),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_the_images_python_is_the_locks_target(dockerfile: DockerfileParser) -> None:
    target = re.search(r"--python-version (\S+)", (ROOT / "Makefile").read_text())
    assert target and target.group(1) == dockerfile.labels["io.grpo-rlvr.python"] == "3.11"
    runs = " ".join(_instructions(dockerfile, "RUN"))
    assert "python3.11 " in runs and "--python /usr/bin/python3.11 /opt/venv" in runs
