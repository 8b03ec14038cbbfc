"""Whether this host can run training on the GPU: the NVIDIA driver (read from NVML through ctypes), the
CUDA version torch was built for, whether that driver is new enough for it, and the GPUs torch sees.

A CUDA build of torch on a driver that is too old, or in a container started without `--gpus`, reports
no GPU and runs everything on the CPU; a GPU recipe would then train for days without a word. The
training entry points ask `probe().problem` first and refuse, naming what was found. Importing this
module loads no torch: the launcher and `grpo-rlvr env` use it too.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

# CUDA major version -> the oldest Linux driver branch that runs it (NVIDIA's CUDA compatibility table:
# CUDA 13.x needs >= 580, 12.x >= 525 through minor-version compatibility, 11.x >= 450).
MIN_DRIVER = {13: 580, 12: 525, 11: 450}
NVML_LIBRARY = "libnvidia-ml.so.1"  # mounted by the NVIDIA container toolkit with `--gpus`
CPU_ON_PURPOSE = "set use_cpu: true to train on the CPU on purpose (hours a step for real models)"


def nvidia_driver_version(library: str = NVML_LIBRARY) -> str | None:
    """The loaded NVIDIA driver's version ("580.65.06"), or None where there is no driver to ask."""
    try:
        nvml = ctypes.CDLL(library)
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:  # NVML_SUCCESS; e.g. a driver library without a kernel module
        return None
    try:
        buffer = ctypes.create_string_buffer(96)
        if nvml.nvmlSystemGetDriverVersion(buffer, ctypes.c_uint(len(buffer))) != 0:
            return None
        return buffer.value.decode()
    finally:
        nvml.nvmlShutdown()


@dataclass(frozen=True)
class CudaStatus:
    """What was found: `torch_cuda` the CUDA version of torch's build (None: a CPU build), `driver` the
    NVIDIA driver version (None: none found), `gpus` the devices torch can use."""

    torch_version: str
    torch_cuda: str | None
    driver: str | None
    gpus: int

    @property
    def needed_driver(self) -> int | None:
        """The lowest driver branch torch's CUDA build runs on (None: a CPU build, or a CUDA unknown here)."""
        if self.torch_cuda is None:
            return None
        return MIN_DRIVER.get(int(self.torch_cuda.split(".")[0]))

    @property
    def driver_fits(self) -> bool | None:
        """Whether the driver runs torch's CUDA build; None when there is no driver or no CUDA build."""
        if self.driver is None or self.needed_driver is None:
            return None
        return int(self.driver.split(".")[0]) >= self.needed_driver

    @property
    def problem(self) -> str | None:
        """Why CUDA is not usable here, in one sentence; None when training can use the GPU."""
        if self.torch_cuda is None:
            return f"torch {self.torch_version} is built without CUDA (a CPU build)"
        if self.driver is None:
            return (
                "no GPU visible: no NVIDIA driver found (a container started without `--gpus all`, "
                "or a host without an NVIDIA GPU and driver)"
            )
        if self.driver_fits is False:
            return (
                f"NVIDIA driver {self.driver}: this torch's CUDA {self.torch_cuda} build needs driver "
                f"R{self.needed_driver} or newer (update the host's driver)"
            )
        if self.gpus == 0:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            where = f"CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "CUDA reports none"
            return f"no GPU visible to torch ({where}), though NVIDIA driver {self.driver} is loaded"
        return None

    def lines(self) -> list[str]:
        """What `grpo-rlvr env` prints."""
        fits = {True: "fits", False: "too old", None: "not checked"}[self.driver_fits]
        needed = f", needs R{self.needed_driver}+" if self.needed_driver else ""
        return [
            f"nvidia_driver={self.driver or 'none found'}",
            f"torch_cuda={self.torch_cuda or 'none (CPU build)'}{needed}; driver: {fits}",
            f"gpu_training={'usable' if self.problem is None else 'not usable: ' + self.problem}",
        ]


def probe() -> CudaStatus:
    """This host, as training would see it."""
    import torch

    driver = nvidia_driver_version()
    # torch.cuda asks the driver only where one exists (on an old one it warns and reports none anyway)
    gpus = torch.cuda.device_count() if driver is not None and torch.version.cuda else 0
    return CudaStatus(torch.__version__, torch.version.cuda, driver, gpus)
