"""Helpers for running the built image with clients nobody here wrote (SageMaker SDK, AWS CLI, a registry).

Each client lives in its own virtual environment under build/image-clients/, made from the exact pins in
tests/image/requirements-<name>.txt, as a user's laptop would hold it apart from the image's pins. Every
failed step names itself: "sagemaker local: ...", "push: ...".
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMAGE = os.environ.get("IMAGE", "grpo-rlvr:latest")
DOCKER = os.environ.get("DOCKER", "docker")
VENVS = ROOT / "build" / "image-clients"
OUTPUT_TAIL = 6000


def client_env(extra: Mapping[str, str] = ()) -> dict[str, str]:
    """The environment for client tools: the engine's own `docker` client first on PATH (the SDK and the
    scripts call plain `docker`), so the client the runner chose is the one they use."""
    env = dict(os.environ)
    docker_dir = os.path.dirname(DOCKER)
    if docker_dir:
        env["PATH"] = f"{docker_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run_step(
    label: str,
    command: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one client step; a non-zero exit or a timeout fails the test with `label` and the output's tail."""
    started = time.monotonic()
    try:
        result = subprocess.run(
            list(command),
            env=dict(env) if env is not None else client_env(),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        output = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else err.stdout or ""
        pytest.fail(f"{label} failed: no result after {timeout:.0f} s\n{output[-OUTPUT_TAIL:]}")
    elapsed = time.monotonic() - started
    print(f"{label}: exit {result.returncode} after {elapsed:.1f} s")
    if result.returncode != 0:
        output = result.stdout + result.stderr
        pytest.fail(f"{label} failed (exit {result.returncode}):\n{output[-OUTPUT_TAIL:]}")
    return result


def client_venv(name: str) -> Path:
    """The interpreter of the `name` client environment, (re)made when its pins file changed."""
    requirements = HERE / f"requirements-{name}.txt"
    venv = VENVS / name
    marker = venv / "requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if python.exists() and marker.is_file() and marker.read_text() == digest:
        return python
    uv = Path(sys.executable).parent / "uv"
    run_step(
        f"{name} client environment: uv venv",
        [str(uv), "venv", "-q", "--clear", "-p", "python3.11", str(venv)],
        timeout=300,
    )
    run_step(
        f"{name} client environment: uv pip install -r {requirements.name}",
        [str(uv), "pip", "install", "-q", "--python", str(python), "-r", str(requirements)],
        timeout=900,
    )
    marker.write_text(digest)
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(
    label: str, command: Sequence[str], port: int, log_path: Path, timeout: float = 60
) -> Iterator[None]:
    """A server this test starts, listening on 127.0.0.1:`port` within `timeout`, its output in
    `log_path`; terminated (then killed) on exit."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(list(command), stdout=log, stderr=log)
        try:
            _wait_for_port(label, port, process, timeout)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_port(label: str, port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{label} failed: it exited with code {process.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"{label} failed: nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")
