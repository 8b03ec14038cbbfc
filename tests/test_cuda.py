"""No silent CPU: a recipe that does not ask for the CPU is refused where CUDA is not usable, before any
download or model load, naming what was found; `use_cpu: true` trains on the CPU on purpose.

Each host a GPU recipe can meet is simulated by the status the probe returns (a CPU build of torch, no
driver, a driver too old for the CUDA 13 build, a driver but no device visible); the probe's own parts
run for real on this machine (no NVIDIA driver, torch's CPU build)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from bad_inputs import make_tree

from grpo_rlvr import cli, cuda
from grpo_rlvr.launch import entrypoint

GPU_RECIPE = "qwen2.5-0.5b-gsm8k"
CU130 = "2.11.0+cu130"
HOSTS = {
    "cpu-build": (cuda.CudaStatus("2.13.0+cpu", None, None, 0), "torch 2.13.0+cpu is built without CUDA"),
    "no-driver": (cuda.CudaStatus(CU130, "13.0", None, 0), "no GPU visible: no NVIDIA driver found"),
    "old-driver": (
        cuda.CudaStatus(CU130, "13.0", "570.86.15", 0),
        "NVIDIA driver 570.86.15: this torch's CUDA 13.0 build needs driver R580 or newer",
    ),
    "hidden": (cuda.CudaStatus(CU130, "13.0", "580.65.06", 0), "no GPU visible to torch"),
}


@pytest.mark.parametrize("host", HOSTS)
def test_each_unusable_host_is_named(host: str) -> None:
    status, found = HOSTS[host]
    assert status.problem is not None and found in status.problem
    assert any(line.startswith("gpu_training=not usable: ") for line in status.lines())


def test_a_driver_that_fits_with_a_visible_gpu_is_usable() -> None:
    status = cuda.CudaStatus(CU130, "13.0", "580.65.06", 1)
    assert status.problem is None and status.driver_fits and status.needed_driver == 580
    assert status.lines() == [
        "nvidia_driver=580.65.06",
        "torch_cuda=13.0, needs R580+; driver: fits",
        "gpu_training=usable",
    ]
    assert cuda.CudaStatus("2.5.0+cu124", "12.4", "550.54.14", 1).driver_fits  # 12.x runs on R525+
    assert cuda.CudaStatus(CU130, "13.0", "575.51.03", 1).driver_fits is False


def test_this_machine_is_probed_for_real(monkeypatch: pytest.MonkeyPatch) -> None:
    """No NVIDIA driver library here (NVML unreadable) and torch's CPU build: both found as they are."""
    assert cuda.nvidia_driver_version("libnvidia-ml-not-here.so.1") is None
    import torch

    status = cuda.probe()
    assert (status.torch_version, status.torch_cuda) == (torch.__version__, torch.version.cuda)
    assert status.problem is not None  # no usable CUDA on the machines this suite runs on


@pytest.mark.parametrize("host", HOSTS)
def test_train_refuses_a_gpu_recipe_before_anything_loads(
    host: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    status, found = HOSTS[host]
    monkeypatch.setattr(cuda, "probe", lambda: status)

    def no_load(*_: object, **__: object) -> None:
        raise AssertionError("a tokenizer or model was loaded")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", no_load)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_load)
    assert cli.main(["train", "--recipe", GPU_RECIPE]) == 2
    error = capsys.readouterr().err
    assert found in error and "use_cpu: true" in error and error.count("\n") == 1


def test_the_real_gpu_recipe_on_this_cpu_machine_fails_at_once(capsys: pytest.CaptureFixture) -> None:
    """The default recipe on this machine, nothing simulated: refused, never on its way to the hub."""
    assert cli.main(["train", "--recipe", GPU_RECIPE]) == 2
    error = capsys.readouterr().err
    assert "CUDA is not usable here" in error and cuda.probe().problem in error


def test_the_launcher_exits_2_with_a_failure_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status, found = HOSTS["old-driver"]
    monkeypatch.setattr(cuda, "probe", lambda: status)
    base = make_tree(tmp_path / "opt_ml", {"recipe": GPU_RECIPE})
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    assert entrypoint.main() == 2
    failure = (base / "output" / "failure").read_text()
    assert found in failure and "use_cpu: true" in failure
    assert not (base / "model").exists() or not any((base / "model").iterdir())


def test_use_cpu_true_trains_on_the_cpu_on_purpose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same unusable host: a recipe that asks for the CPU passes the check; without it, refused."""
    from grpo_rlvr.config.checks import check_device
    from grpo_rlvr.config.loading import load_config
    from grpo_rlvr.config.sections import ConfigError

    monkeypatch.setattr(cuda, "probe", lambda: HOSTS["old-driver"][0])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model_name_or_path": "builtin:tiny-qwen2", "use_cpu": True}))
    on_purpose = load_config(recipe)
    assert on_purpose.cpu_on_purpose and on_purpose.training.use_cpu
    check_device(on_purpose)  # no error: the CPU was asked for
    wants_gpu = load_config(recipe, ["use_cpu=false"])
    assert not wants_gpu.cpu_on_purpose
    with pytest.raises(ConfigError, match="R580 or newer") as refused:
        check_device(wants_gpu)
    assert refused.value.key == "use_cpu"


def test_env_prints_the_driver_the_cuda_build_and_whether_they_fit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(cuda, "probe", lambda: HOSTS["old-driver"][0])
    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    assert "nvidia_driver=570.86.15" in out
    assert "torch_cuda=13.0, needs R580+; driver: too old" in out
    assert "gpu_training=not usable: NVIDIA driver 570.86.15" in out
