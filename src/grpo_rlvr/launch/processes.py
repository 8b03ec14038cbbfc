"""Starting the training processes on this host: `accelerate launch` of `grpo-rlvr train`, with the main
host's address and the communication variables SageMaker's PyTorch images set, in one process group
that SIGTERM reaches whole."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from sagemaker_training import SM_EFA_RDMA_INSTANCES

from grpo_rlvr import handoff, signals, tiny
from grpo_rlvr.config.sections import RunConfig
from grpo_rlvr.launch.planning import Plan, accelerate_config_path
from grpo_rlvr.runlock import RunLock
from grpo_rlvr.sagemaker import ContractError, Resources

log = logging.getLogger("grpo_rlvr.launch")

# "algo-1=10.0.0.5,algo-2=10.0.0.6": addresses for host names that DNS does not know (tests on loopback,
# clusters without SageMaker's DNS). Names absent here are resolved by DNS, waiting as SageMaker's own
# PyTorch container does, since the other hosts' names may appear a little after this one starts.
HOST_ADDRS_ENV = "GRPO_RLVR_HOST_ADDRS"
PORT_ENV = "GRPO_RLVR_MAIN_PROCESS_PORT"
DEFAULT_PORT = 29500
DNS_TIMEOUT_S = 900.0
# SageMaker (spot or StopTrainingJob) and our compose file allow 120 s from SIGTERM to SIGKILL; keep
# a few seconds of them for the failure file and the exit.
STOP_GRACE_S = 110
# Where the AWS OFI NCCL plugin (libnccl-net.so, NCCL over EFA) is installed on AWS images; the image
# ships none, so multi-node traffic goes over TCP sockets unless one is built on top (docs/image.md).
NCCL_NET_PLUGIN_DIRS = ("/opt/amazon/ofi-nccl/lib", "/opt/aws-ofi-nccl/lib", "/usr/local/lib")


def distributed_env(
    resources: Resources,
    gpus: int,
    *,
    net_dir: Path = Path("/sys/class/net"),
    efa_dir: Path = Path("/dev/infiniband"),
    plugin_dirs: Sequence[str] = NCCL_NET_PLUGIN_DIRS,
) -> dict[str, str]:
    """Communication variables, chosen as SageMaker's PyTorch images do (sagemaker_training's
    torch_distributed runner and the PyTorch container's NCCL setup), for a multi-process run.

    The interface from resourceconfig.json is used only when it exists here: SDK local mode writes
    `ethwe`, which no local container has. On CPU, DeepSpeed uses its CPU accelerator (gloo). EFA
    variables only for several hosts, with EFA devices and an OFI NCCL plugin to use them (without one
    NCCL talks TCP and the variables do nothing); device RDMA only on the instance types the toolkit
    lists for it. No NCCL_PROTO: `simple` slows NVLink inside a host, and current plugins need none.
    """
    found: dict[str, str] = {"TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(STOP_GRACE_S)}
    interface = resources.network_interface
    has_interface = interface is not None and (net_dir / interface).exists()
    several_hosts = len(resources.hosts) > 1
    if gpus == 0:
        found["DS_ACCELERATOR"] = "cpu"
        if has_interface and several_hosts:
            found["GLOO_SOCKET_IFNAME"] = interface
        return found
    found["NCCL_DEBUG"] = "WARN"
    if has_interface:
        found["NCCL_SOCKET_IFNAME"] = interface
    if several_hosts and any(efa_dir.glob("uverbs*")):
        plugin = nccl_net_plugin([*os.environ.get("LD_LIBRARY_PATH", "").split(":"), *plugin_dirs])
        if plugin is None:
            log.warning(
                "EFA devices found but no OFI NCCL plugin (libnccl-net.so): NCCL between hosts uses TCP "
                "sockets, several times slower than EFA; see docs/image.md (multi-node over EFA)"
            )
            return found
        found |= {"FI_PROVIDER": "efa", "RDMAV_FORK_SAFE": "1"}
        if resources.instance_type in SM_EFA_RDMA_INSTANCES:
            found["FI_EFA_USE_DEVICE_RDMA"] = "1"
    return found


def nccl_net_plugin(folders: Sequence[str]) -> Path | None:
    """The first NCCL network plugin library (libnccl-net*.so) in `folders`, else None."""
    for folder in filter(None, folders):
        found = sorted(Path(folder).glob("libnccl-net*.so*"))
        if found:
            return found[0]
    return None


def host_address(host: str, env: Mapping[str, str], timeout_s: float = DNS_TIMEOUT_S) -> str:
    """The address of `host`: from GRPO_RLVR_HOST_ADDRS if listed there, else DNS (retried until timeout)."""
    mapping: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in env.get(HOST_ADDRS_ENV, "").split(","))):
        name, sep, address = item.partition("=")
        if not sep or not name or not address:
            raise ContractError(
                f"fix {HOST_ADDRS_ENV}: write host=address pairs separated by commas, not {item!r}"
            )
        mapping[name.strip()] = address.strip()
    if host in mapping:
        return mapping[host]
    deadline, wait = time.monotonic() + timeout_s, 0.1
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError as err:
            if time.monotonic() > deadline:
                raise ContractError(f"host {host} from resourceconfig.json does not resolve ({err})") from err
            time.sleep(wait)
            wait = min(wait * 2, 10.0)


def uses_deepspeed(config_file: Path) -> bool:
    """Whether an accelerate config runs DeepSpeed (its `distributed_type`)."""
    import yaml

    return (yaml.safe_load(config_file.read_text()) or {}).get("distributed_type") == "DEEPSPEED"


def accelerate_command(
    plan: Plan, config_file: Path, main_address: str, port: int, settings: Path
) -> list[str]:
    """`accelerate launch` of `grpo-rlvr train` on every process; the settings go in a file (`handoff`)."""
    # On CPU DDP needs `--multi_gpu` (gloo; `--cpu` would start ONE process). Not with DeepSpeed: accelerate
    # reads the config's distributed_type only when no such flag is given, and would run plain DDP.
    multi_gpu = plan.gpus == 0 and not uses_deepspeed(config_file)
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(config_file),
        *(["--multi_gpu"] if multi_gpu else []),
        "--num_processes", str(plan.processes),
        "--num_machines", str(len(plan.resources.hosts)),
        "--machine_rank", str(plan.resources.rank),
        "--main_process_ip", main_address,
        "--main_process_port", str(port),
        "-m", "grpo_rlvr.cli", "train", "--settings", str(settings),
    ]  # fmt: skip


def run_children(
    command: list[str], env: Mapping[str, str], pass_fds: Sequence[int] = ()
) -> tuple[int, int | None]:
    """Run `command` in its own process group; SIGTERM/SIGINT to the launcher go to the whole group,
    which gets STOP_GRACE_S to checkpoint before SIGKILL. Returns (exit code, signal forwarded or None).
    `pass_fds` stay open in the child (the run lock: held until the training processes have ended)."""
    child: subprocess.Popen[bytes] | None = None
    received: list[tuple[int, float]] = []  # (signal, when)

    def forward(signum: int, _frame: object) -> None:
        received.append((signum, time.monotonic()))
        if child is not None:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)

    # The handler goes in first: a signal between the start and the handler would orphan the group.
    with signals.handling(forward):
        try:
            child = subprocess.Popen(command, env=dict(env), start_new_session=True, pass_fds=tuple(pass_fds))
            if received:
                os.killpg(child.pid, signal.SIGTERM)
            while True:
                try:
                    code = child.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    if received and time.monotonic() - received[0][1] > STOP_GRACE_S:
                        log.error("processes still running %d s after SIGTERM: killing them", STOP_GRACE_S)
                        os.killpg(child.pid, signal.SIGKILL)
        finally:
            if child is not None:
                with suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)  # stragglers of the group
    return code, received[0][0] if received else None


def run_distributed(plan: Plan, run_config: RunConfig, lock: RunLock) -> tuple[int, int | None]:
    """`accelerate launch` on this host; returns (exit code, signal forwarded or None).

    A built-in model is built here, once per host, before any process group exists: inside one,
    transformers writes files on global rank 0 only, which left every other host a folder without a config.
    """
    tiny.resolve_model_path(run_config.model.model_name_or_path)
    config_file = accelerate_config_path(plan.accelerate_config)
    main_address = host_address(plan.resources.main_host, os.environ)
    port = int(os.environ.get(PORT_ENV, DEFAULT_PORT))
    extra_env = {k: v for k, v in distributed_env(plan.resources, plan.gpus).items() if k not in os.environ}
    log.info("environment added for the training processes: %s", json.dumps(extra_env, sort_keys=True))
    with handoff.settings_file(plan.recipe, plan.overrides) as settings:
        command = accelerate_command(plan, config_file, main_address, port, settings)
        log.info("running: %s", " ".join(command))
        return run_children(command, {**os.environ, **extra_env}, pass_fds=(lock.fd,))
