"""Inside the image: its versions are the lock's, the GPU stack imports and links, the tests pass there."""

from __future__ import annotations

import json
import re

from engine import ROOT, run_in_image

from grpo_rlvr.versions import STACK

LOCK = ROOT / "docker" / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)
# Driver libraries: the NVIDIA container toolkit mounts them from the host at `docker run --gpus`; an
# image must not carry them, so without a GPU they are the only names ldd may not find.
DRIVER_LIBRARIES = {"libcuda.so.1", "libnvidia-ml.so.1"}

LINK_CHECK = r"""
import glob, json, os, shutil, subprocess, sys, sysconfig
import bitsandbytes, deepspeed, torch, vllm
from deepspeed import git_version_info

site = os.path.dirname(os.path.dirname(torch.__file__))
cuda = torch.version.cuda.replace(".", "")
libraries = {
    "torch": glob.glob(f"{site}/torch/lib/libtorch_cuda.so"),
    "vllm": glob.glob(f"{site}/vllm/**/*.so", recursive=True),
    # bitsandbytes ships one library per CUDA release and loads the one matching torch's: cuda130.
    "bitsandbytes": glob.glob(f"{site}/bitsandbytes/libbitsandbytes_cuda{cuda}.so"),
    "deepspeed": glob.glob(f"{site}/deepspeed/**/*.so", recursive=True),
}
missing = {}
for package, files in libraries.items():
    for path in files:
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        missing[path] = [line.split()[0] for line in out.splitlines() if "not found" in line]
print(json.dumps({
    "libraries": {k: len(v) for k, v in libraries.items()},
    "missing": missing,
    "torch_cuda": torch.version.cuda,
    "cc": shutil.which("gcc"),
    "python_h": os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")),
    "deepspeed_accelerator": git_version_info.accelerator_name,
    "deepspeed_installed_ops": git_version_info.installed_ops,
}))
"""


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_env_lists_the_lock_versions_and_the_attention(docker: str, image: str) -> None:
    result = run_in_image(docker, image, "env")
    assert result.returncode == 0, result.stderr[-3000:]
    locked = {_canon(name): version for name, version in PIN.findall(LOCK.read_text())}
    lines = set(result.stdout.splitlines())
    for name in STACK:
        if name == "grpo-rlvr":
            continue
        if name == "flash-attn":  # built without FLASH_ATTN_WHEEL_URL: never compiled from source
            assert "flash-attn: not installed" in lines
            continue
        assert f"{name}=={locked[_canon(name)]}" in lines, (name, result.stdout)
    assert "cuda_available=False gpus=0" in lines
    (attention,) = [line for line in lines if line.startswith("attention: ")]
    assert attention.startswith("attention: sdpa (flash_attn is not installed")


def test_gpu_stack_imports_and_its_cuda_libraries_resolve(docker: str, image: str) -> None:
    result = run_in_image(docker, image, "-c", LINK_CHECK, entrypoint="python")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps({k: v for k, v in report.items() if k != "missing"}))
    assert report["torch_cuda"].startswith("13.0")
    # Triton compiles its launcher with a C compiler against Python.h on a GPU's first kernel.
    assert report["cc"] and report["python_h"]
    for package in ("torch", "vllm", "bitsandbytes"):
        assert report["libraries"][package] >= 1, report["libraries"]
    unresolved = {path: sorted(set(names) - DRIVER_LIBRARIES) for path, names in report["missing"].items()}
    assert not {p: n for p, n in unresolved.items() if n}, unresolved
    # DeepSpeed was built for the CUDA accelerator (a GPU-less build would record `cpu`), with no ops
    # pre-compiled: every one of its ops is a CUDA op, none is installed.
    assert report["deepspeed_accelerator"] == "cuda"
    assert "fused_adam" in report["deepspeed_installed_ops"]
    assert not any(report["deepspeed_installed_ops"].values())
    assert report["libraries"]["deepspeed"] == 0


# Training, the launcher and the rewards, on the image's own Python and packages.
# Rewards whole; the code sandbox's isolation as a default `docker run` (SageMaker's case) gives it; the
# launcher's bad-input catalogue and SIGTERM -> resume; training that learns (full, LoRA, 4-bit QLoRA on
# the image's bitsandbytes) and resumes. The two-process and two-node runs stay on the host.
SUBSET = (
    "tests/test_rewards.py",
    "tests/test_code_exec_isolation.py",
    "tests/test_answers.py",
    "tests/test_launch.py::test_bad_input_in_process",
    "tests/test_launch.py::test_sigterm_checkpoints_then_a_restart_resumes",
    "tests/test_train.py::test_grpo_raises_a_toy_reward_and_saves_a_model_that_generates",
    "tests/test_train.py::test_qlora_4bit_trains_and_merges_into_a_full_precision_model",
    "tests/test_train.py::test_resume_starts_after_the_newest_complete_checkpoint",
)


def test_named_subset_passes_inside_the_image(docker: str, image: str) -> None:
    """The repository's tests, mounted read-only, run by the image's pytest against the installed package."""
    tree = "/src/grpo-rlvr"
    parts = ("pyproject.toml", "tests", "recipes", "scripts", "bench")  # tests import bench helpers
    mounts = (
        *(f"{ROOT / part}:{tree}/{part}:ro" for part in parts),
        f"{ROOT / 'src/grpo_rlvr/gsm8k_data'}:/src/shared/data/gsm8k:ro",  # where tests/conftest.py looks
    )
    result = run_in_image(
        docker, image, "-c",
        # A default `docker run` allows no user namespace: its `no-userns` environment cannot be made.
        f"cd {tree} && python -m pytest -p no:cacheprovider -q -x --durations=5 -k 'not no-userns' "
        f"{' '.join(SUBSET)}",
        mounts=mounts, entrypoint="sh", timeout=2400,
    )  # fmt: skip
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary and "skipped" not in summary, summary


# What the image's vLLM registers: quantization methods, model architectures, and the choices of the
# engine settings TRL passes (typing.Literal arguments of EngineArgs' fields).
VLLM_REGISTRY = r"""
import dataclasses, json, typing
from vllm import ModelRegistry
from vllm.engine.arg_utils import EngineArgs
from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

def choices(hint):
    found = set()
    for arg in typing.get_args(hint):
        found |= set(typing.get_args(arg)) if typing.get_origin(arg) is typing.Literal else {arg}
    return sorted(str(c) for c in found if isinstance(c, str))

fields = {f.name: f for f in dataclasses.fields(EngineArgs)}
print(json.dumps({
    "quantization": sorted(QUANTIZATION_METHODS),
    "architectures": sorted(ModelRegistry.get_supported_archs()),
    "fields": sorted(fields),
    "choices": {k: choices(fields[k].type) for k in ("logprobs_mode", "distributed_executor_backend")},
}))
"""


def test_every_setting_our_recipes_hand_vllm_is_registered_there(docker: str, image: str) -> None:
    """vLLM imported in the image (no GPU needed): each baked recipe that generates with vLLM, as TRL
    would start it, asks for nothing the image's vLLM lacks; and the quantization the 4-bit refusal is
    about is still missing there (when a vLLM brings it back, the refusal can go)."""
    from transformers import AutoConfig

    from grpo_rlvr import gpu_rules
    from grpo_rlvr.config.loading import load_config
    from grpo_rlvr.tiny import resolve_model_path

    result = run_in_image(docker, image, "-c", VLLM_REGISTRY, entrypoint="python")
    assert result.returncode == 0, result.stderr[-3000:]
    vllm = json.loads(result.stdout.strip().splitlines()[-1])
    assert "bitsandbytes" not in vllm["quantization"] and "fp8" in vllm["quantization"]
    # Qwen2.5 (the recipes' model) and the built-in tiny models share the Qwen2 architecture.
    architectures = AutoConfig.from_pretrained(resolve_model_path("builtin:tiny-qwen2")).architectures
    assert architectures == ["Qwen2ForCausalLM"] and set(architectures) <= set(vllm["architectures"])
    generating = [load_config(n) for n in ("qwen2.5-0.5b-gsm8k", "qwen2.5-0.5b-gsm8k-seed")]
    generating = [c for c in generating if c.training.use_vllm]
    assert generating  # the default recipe generates with vLLM
    for config in generating:
        settings = gpu_rules.vllm_engine_settings(config.model, config.training)
        assert set(settings) <= set(vllm["fields"])
        assert settings["quantization"] is None or settings["quantization"] in vllm["quantization"]
        for key, allowed in vllm["choices"].items():
            assert settings[key] in allowed, (key, settings[key], allowed)
