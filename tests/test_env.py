"""The project environment is the image lock's: same versions, GPU-only packages left out on CPU."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("dev_env", ROOT / "scripts" / "dev_env.py")
assert _spec and _spec.loader
dev_env = importlib.util.module_from_spec(_spec)
sys.modules["dev_env"] = dev_env
_spec.loader.exec_module(dev_env)

LOCK = dev_env.Lock.parse((ROOT / "docker" / "requirements.lock").read_text())


def _installed() -> dict[str, str]:
    return {dev_env.canon(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def test_installed_versions_equal_the_lock() -> None:
    installed = _installed()
    shared = set(installed) & set(LOCK.versions)
    # The runtime stack is really there (not a vacuous comparison over a handful of names).
    assert {"torch", "trl", "transformers", "numpy", "deepspeed", "mlflow", "sagemaker-training"} <= shared
    assert dev_env.mismatches(LOCK.versions, installed) == []


def test_a_differing_version_is_reported_and_only_a_local_label_is_allowed() -> None:
    lock = {"numpy": "2.3.5", "torch": "2.13.0", "vllm": "0.31.0"}
    assert dev_env.mismatches(lock, {"numpy": "2.3.5", "torch": "2.13.0+cpu"}) == []
    assert dev_env.mismatches(lock, {"numpy": "2.4.6", "torch": "2.13.1+cpu"}) == [
        "numpy: installed 2.4.6, lock 2.3.5",
        "torch: installed 2.13.1+cpu, lock 2.13.0",
    ]


def test_the_cpu_set_walks_the_lock_from_the_runtime_dependencies() -> None:
    torch_wheel = {"filelock", "typing-extensions", "setuptools", "sympy", "networkx", "jinja2", "fsspec"}
    runtime = dev_env.needed(LOCK, ["trl", "deepspeed", "torch"], {"torch": torch_wheel})
    assert {"trl", "numpy", "sympy", "pydantic", "hjson"} <= runtime
    # Reached only through the image's GPU stack or the CUDA torch build.
    gpu_only = {name for name in LOCK.versions if name.startswith(("nvidia-", "cuda-"))}
    assert gpu_only and not runtime & (gpu_only | {"vllm", "flash-attn", "triton", "kernels"})
    # With the lock's own torch edges the CUDA libraries are needed.
    assert "nvidia-cublas" in dev_env.needed(LOCK, ["torch"], {})
