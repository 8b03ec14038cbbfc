"""`make gpu-check`: the wheelhouse `bench/gpu_check.sh` installs on a bare GPU machine, in build/gpu-check/.

The target already has PyTorch (2.11, CUDA 13), transformers 5.17, peft, accelerate, pyarrow and pandas on
Python 3.12, and no network. What it lacks for a training run through `training.grpo.run`: TRL, datasets and
their needs, matplotlib (the training curves), and this package. Each is downloaded by name at the
version docker/requirements.lock pins, as a Python 3.12 manylinux wheel, without its dependencies (they
are listed here, so the wheelhouse is the same every time); this package is built as a wheel. The whole
must stay within MAX_MIB, so it travels with the repository's copy to the machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "docker" / "requirements.lock"
MAX_MIB = 60
# What a machine with torch, transformers, peft, accelerate, pyarrow and pandas lacks (their own
# dependencies such as numpy, huggingface-hub, tqdm, pyyaml, packaging and python-dateutil are there).
PACKAGES = (
    "trl", "datasets", "dill", "multiprocess", "xxhash", "fsspec",
    "aiohttp", "aiosignal", "aiohappyeyeballs", "frozenlist", "multidict", "yarl", "propcache", "attrs",
    "matplotlib", "contourpy", "cycler", "fonttools", "kiwisolver", "pillow", "pyparsing",
)  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")


def pins(names: tuple[str, ...] = PACKAGES, lock: Path = LOCK) -> list[str]:
    """`name==version` for each package, at the lock's version (a name the lock lacks is an error)."""
    text = lock.read_text()
    found = []
    for name in names:
        pattern = re.escape(name).replace(r"\-", "[-_.]")
        match = re.search(rf"^({pattern})==([^\s;\\]+)", text, re.M | re.I)
        if match is None:
            raise SystemExit(f"{name} is not in {lock}: the wheelhouse pins the lock's versions")
        found.append(f"{match[1]}=={match[2]}")
    return found


def build(out: Path) -> Path:
    """Download the wheels and build this package's; returns the wheels folder."""
    wheels = out / "wheels"
    shutil.rmtree(out, ignore_errors=True)
    wheels.mkdir(parents=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "download", "--dest", str(wheels), "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--implementation", "cp", *platforms, *pins()],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(ROOT)],
        check=True,
    )
    return wheels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu-check")
    args = parser.parse_args(argv)
    wheels = build(args.out)
    size = sum(p.stat().st_size for p in wheels.iterdir())
    print(f"{len(list(wheels.iterdir()))} wheels, {size / 2**20:.1f} MiB in {wheels}")
    if size > MAX_MIB * 2**20:
        print(f"the wheelhouse exceeds {MAX_MIB} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
