"""Helpers for the image tests: `docker run` of the image, and one isolated `docker compose` project."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_in_image(
    docker: str, image: str, *args: str, mounts: tuple[str, ...] = (), entrypoint: str | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`docker run --rm` of the image with its entrypoint (or `entrypoint`), output captured."""
    command = [docker, "run", "--rm", "--network=none"]
    for mount in mounts:
        command += ["-v", mount]
    if entrypoint:
        command += ["--entrypoint", entrypoint]
    return subprocess.run([*command, image, *args], capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Compose:
    """`docker compose` on the project's own docker-compose.yml, as one isolated project: its own name,
    /opt/ml trees under `base` and a free port for the mlflow service."""

    def __init__(self, docker: str, image: str, base: Path) -> None:
        self.docker, self.base = docker, base
        self.name = f"grpo-rlvr-test-{uuid.uuid4().hex[:8]}"
        self.mlflow_port = free_port()
        self.env = {
            **os.environ,
            "IMAGE": image,
            "OPT_ML": str(base / "opt_ml"),
            "OPT_ML_SMOKE": str(base / "opt_ml" / "smoke"),
            "MLFLOW_PORT": str(self.mlflow_port),
        }
        self.env.pop("MLFLOW_TRACKING_URI", None)

    @property
    def smoke_tree(self) -> Path:
        return self.base / "opt_ml" / "smoke"

    def command(self, *args: str) -> list[str]:
        return [self.docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "-p", self.name, *args]

    def __call__(
        self, *args: str, timeout: int = 900, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def exit_code(self, service: str) -> int:
        (container,) = self("ps", "-a", "-q", service).stdout.split()
        found = subprocess.run(
            [self.docker, "inspect", "--format", "{{.State.ExitCode}}", container],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(found.stdout)
