#!/usr/bin/env python3
"""Create or refresh the project environment (.venv) with the image lock's exact versions.

`make test` and `make smoke` call this when pyproject.toml or docker/requirements.lock changed, so
the tests run on what the image ships. Standard library only: it runs before any environment exists.

What gets installed:
1. From docker/requirements.lock, hash-checked: every package the runtime dependencies in
   pyproject.toml need, found by walking the lock's own `# via` graph from those roots. Packages
   only the image's GPU stack pulls in (vLLM, flash-attn, kernels, CUDA libraries) are never reached.
2. torch at the lock's version: the CPU build when a find-links folder offers it (its own
   requirements replace the CUDA build's in the walk), else the lock's build.
3. The dev tools pinned in pyproject.toml's `dev` extra, with the lock as constraints.
4. The project itself, editable, without dependencies; then `uv pip check`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
VIA = re.compile(r"^\s*#\s+(?:via\s+)?(\S+)\s*$")


def canon(name: str) -> str:
    """PEP 503 normalised name: `Typing_Extensions` and `typing-extensions` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = NAME.match(requirement.strip())
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return canon(match.group(0))


@dataclass
class Lock:
    """docker/requirements.lock as pins, hash-carrying blocks and the `# via` graph (child -> parents)."""

    versions: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, str] = field(default_factory=dict)
    parents: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Lock:
        lock = cls()
        current = ""
        for line in text.splitlines():
            pin = PIN.match(line)
            if pin:
                current = canon(pin.group(1))
                lock.versions[current] = pin.group(2).rstrip("\\").strip()
                lock.blocks[current] = line
                lock.parents[current] = set()
            elif current and line.startswith("    --hash"):
                lock.blocks[current] += "\n" + line
            elif current and (via := VIA.match(line)) and via.group(1) not in ("via", "-r"):
                lock.parents[current].add(canon(via.group(1)))
        return lock

    def children(self) -> dict[str, set[str]]:
        graph: dict[str, set[str]] = {name: set() for name in self.versions}
        for child, parents in self.parents.items():
            for parent in parents:
                graph.setdefault(parent, set()).add(child)
        return graph


def wheel_requirements(wheel: Path) -> set[str]:
    """Names a wheel requires outside its optional extras (read from its METADATA)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    required = (line.split(":", 1)[1] for line in lines if line.startswith("Requires-Dist:"))
    return {requirement_name(r) for r in required if "extra ==" not in r.partition(";")[2]}


def needed(lock: Lock, roots: Iterable[str], overrides: Mapping[str, set[str]]) -> set[str]:
    """Every lock package reachable from `roots`; `overrides` replaces a package's lock children."""
    graph = lock.children()
    seen: set[str] = set()
    todo = [canon(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name not in lock.versions:
            continue
        seen.add(name)
        todo.extend(overrides.get(name, graph.get(name, set())))
    return seen


def mismatches(lock_versions: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """Packages in both whose versions differ; a local label (torch's `+cpu`) is the same release."""
    return [
        f"{name}: installed {installed[name]}, lock {version}"
        for name, version in sorted(lock_versions.items())
        if name in installed and installed[name].split("+")[0] != version.split("+")[0]
    ]


def find_cpu_torch(version: str, folders: Iterable[str]) -> Path | None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for folder in folders:
        for wheel in sorted(Path(folder).glob(f"torch-{version}+cpu-{tag}-*.whl")):
            return wheel
    return None


def pip_find_links() -> list[str]:
    """Folders pip is configured to look in (PIP_FIND_LINKS or pip.conf), where a CPU torch may wait."""
    value = os.environ.get("PIP_FIND_LINKS", "")
    if not value:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
            capture_output=True,
            text=True,
        )
        value = result.stdout if result.returncode == 0 else ""
    return [item for item in value.split() if Path(item).is_dir()]


def uv_command(pin: str, tools: Path) -> str:
    """The pinned uv: the one on PATH when it is that version, else installed once into `tools`."""
    for candidate in (shutil.which("uv"), str(tools / "bin" / "uv")):
        if candidate and Path(candidate).exists():
            result = subprocess.run([candidate, "--version"], capture_output=True, text=True)
            if result.stdout.split()[1:2] == [pin]:
                return candidate
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(tools)], check=True)
    subprocess.run([str(tools / "bin" / "pip"), "install", "-q", f"uv=={pin}"], check=True)
    return str(tools / "bin" / "uv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="environment folder to sync")
    parser.add_argument("--lock", type=Path, default=ROOT / "docker" / "requirements.lock", help="lock file")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the environment")
    parser.add_argument(
        "--find-links",
        action="append",
        help="folder holding torch's CPU wheel (default: pip's configured find-links)",
    )
    args = parser.parse_args(argv)

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = project["optional-dependencies"]["dev"]
    lock = Lock.parse(args.lock.read_text())
    build = ROOT / "build" / "dev-env"
    build.mkdir(parents=True, exist_ok=True)

    cpu_torch = find_cpu_torch(lock.versions["torch"], args.find_links or pip_find_links())
    overrides = {"torch": wheel_requirements(cpu_torch)} if cpu_torch else {}
    runtime = needed(lock, map(requirement_name, project["dependencies"]), overrides)
    locked = sorted(runtime - ({"torch"} if cpu_torch else set()))
    (build / "runtime.txt").write_text("\n".join(lock.blocks[name] for name in locked) + "\n")
    (build / "constraints.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(lock.versions.items())))
    (build / "dev.txt").write_text("\n".join(dev) + "\n")

    uv_pin = next(r.split("==")[1] for r in dev if requirement_name(r) == "uv")
    uv = uv_command(uv_pin, ROOT / "build" / "uv")
    env = {**os.environ, "VIRTUAL_ENV": str(args.venv.resolve()), "DS_BUILD_OPS": "0"}
    env.pop("UV_SYSTEM_PYTHON", None)

    def run(*command: str | Path) -> None:
        subprocess.run([uv, *map(str, command)], check=True, env=env, cwd=ROOT)

    run("venv", "-q", "--allow-existing", "-p", args.python, args.venv)
    run("pip", "sync", "-q", "--require-hashes", build / "runtime.txt")
    if cpu_torch:
        run("pip", "install", "-q", "--no-deps", cpu_torch)
    run("pip", "install", "-q", "-c", build / "constraints.txt", "-r", build / "dev.txt")
    run("pip", "install", "-q", "--no-deps", "-e", ROOT)
    run("pip", "check", "-q")
    torch = cpu_torch.name if cpu_torch else "the lock's build"
    print(f"{args.venv}: {len(runtime)} packages at the lock's versions (torch: {torch}), dev tools, project")
    return 0


if __name__ == "__main__":
    sys.exit(main())
