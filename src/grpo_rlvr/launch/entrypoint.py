"""`grpo-rlvr launch`: from the /opt/ml contract to one training process, or to `accelerate launch`.

The image's `train` (SageMaker's `docker run IMAGE train`, `docker compose up train`, SDK local mode
with no command) ends here. The launcher owns what no training process can: the process topology
(GPUs x hosts), SIGTERM forwarding, the failure file and the exit code. One process in total runs
training in this very process; more start `accelerate launch` with a config from `recipes/accelerate/`,
each process running `grpo-rlvr train --settings FILE`: the validated settings travel in a private file
(`handoff.py`), never on a command line, where any user of the host could read a credential.

Importing the launcher loads neither torch nor TRL (it reads checkpoints through `checkpoints.py`):
validating a recipe loads TRL's config classes, and only a single-process run imports `train`.

Exit codes: 0 success; 1 training failed; 2 an input needs fixing (hyperparameter, channel, config
JSON, recipe, data); 143 (130) stopped by SIGTERM (SIGINT) after saving what could be saved.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import traceback
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from grpo_rlvr import sagemaker, signals
from grpo_rlvr.checkpoints import (
    SUMMARY_NAME,
    ForeignCheckpoint,
    TrainingInterrupted,
    check_settings,
    checkpoint_step,
    finished_run,
    is_complete,
    latest_complete_checkpoint,
    weight_settings,
)
from grpo_rlvr.config.checks import check_device
from grpo_rlvr.config.sections import ConfigError, RunConfig
from grpo_rlvr.datafiles import DataError
from grpo_rlvr.hub import HubUnavailable
from grpo_rlvr.launch.logs import RedactedOutput, error_from_output, redacted_logging
from grpo_rlvr.launch.planning import Plan, make_plan
from grpo_rlvr.launch.processes import run_distributed
from grpo_rlvr.redact import Redactor
from grpo_rlvr.runlock import AlreadyRunning, RunLock
from grpo_rlvr.sagemaker import ContractError, Paths

log = logging.getLogger("grpo_rlvr.launch")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# "Fix an input", not a crash.
BAD_INPUT_ERRORS = (ContractError, ConfigError, DataError, HubUnavailable, ForeignCheckpoint)
DISK_FULL_BYTES = 64 * 2**20  # less free space than this after a failure: the disk is the likely cause


class Stopped(BaseException):
    """SIGTERM/SIGINT arrived while the launcher itself (not a training loop) was running.

    A BaseException, like KeyboardInterrupt, so that no library's `except Exception` swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupted_reason(signum: int, checkpoint_dir: Path) -> str:
    """The failure reason of a stopped run: what a restart resumes from."""
    name = signal.Signals(signum).name
    checkpoint = latest_complete_checkpoint(checkpoint_dir)
    if checkpoint is None:
        return (
            f"stopped by {name} before any checkpoint was complete: a new start trains from step 0\n"
            f"(no complete checkpoint in {checkpoint_dir})"
        )
    step = checkpoint_step(checkpoint)
    return (
        f"stopped by {name}: start again with the same checkpoint location to resume from step {step}\n"
        f"checkpoint: {checkpoint}"
    )


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Before training's own handler (or the forwarding one) takes over, SIGTERM/SIGINT stop the launcher
    cleanly: a failure file and an exit code, never a silent death."""

    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    with signals.handling(stop):
        yield


def _fail(paths: Paths, redactor: Redactor, code: int, reason: str) -> int:
    """Leave the failure file (its room kept by `sagemaker.failure_room`) and return `code`."""
    text = sagemaker.write_failure(paths, reason, redactor)
    log.log(logging.WARNING if code > EXIT_BAD_INPUT else logging.ERROR, "failure: %s", text)
    return code


def _disk_full(paths: Paths) -> str:
    """A note for a failure reason when the volume of /opt/ml has (next to) no room left, else ""."""
    try:
        free = shutil.disk_usage(paths.checkpoint_dir).free
    except OSError:
        return ""
    if free >= DISK_FULL_BYTES:
        return ""
    return (
        f"the disk is full ({free // 2**20} MiB free on the volume of {paths.checkpoint_dir}): give the job "
        "a larger volume (VolumeSizeInGB) or keep fewer checkpoints (save_total_limit); "
    )


def _already_finished(paths: Paths, plan: Plan, run_config: RunConfig) -> bool:
    """A single-host run whose model and summary are complete with these very settings (a SageMaker
    retry, a reused folder) has nothing left to do. With several hosts only the main one holds the
    summary, so they all resume instead: from the final checkpoint, to the same end."""
    if len(plan.resources.hosts) > 1:
        return False
    summary = finished_run(paths.model_dir, run_config.resolved())
    if summary is None:
        return False
    log.info(
        "this run already finished (step %s) with the same settings: %s is complete, nothing to do",
        summary.get("global_step"), paths.model_dir,
    )  # fmt: skip
    return True


def _check_resumable(run_config: RunConfig, checkpoint_dir: Path) -> None:
    """The checkpoint training would resume from is ours (same weight settings), before any process
    starts or model loads; whether its content is unchanged, training checks as it resumes."""
    named = run_config.training.resume_from_checkpoint
    candidate = Path(named) if named else latest_complete_checkpoint(checkpoint_dir)
    if candidate is not None and is_complete(candidate):
        check_settings(candidate, weight_settings(run_config.model))


def _attempt(
    paths: Paths, cli_overrides: Sequence[str], redactor: Redactor, output: RedactedOutput, lock: RunLock
) -> int:
    """One attempt, holding the run lock: returns the exit code, leaving a failure file for every
    non-zero one."""
    try:
        plan, run_config = make_plan(paths, cli_overrides, redactor)
        if _already_finished(paths, plan, run_config):
            paths.failure_file.unlink(missing_ok=True)
            return EXIT_OK
        sagemaker.clear_stale_results(paths, SUMMARY_NAME)
        _check_resumable(run_config, paths.checkpoint_dir)
        r = plan.resources
        log.info(
            "recipe %s: %d process(es) = %d GPU(s) x %d host(s); this host %s has machine rank %d",
            plan.recipe, plan.processes, plan.gpus, len(r.hosts), r.current_host, r.rank,
        )  # fmt: skip
        check_device(run_config)  # before N processes start, each to refuse the same way
        if plan.processes == 1:
            from grpo_rlvr.training import grpo  # torch, transformers and TRL: only where this process trains

            grpo.run(run_config)  # training's own SIGTERM handler checkpoints and raises
            return EXIT_OK
        code, forwarded = run_distributed(plan, run_config, lock)
    except (Stopped, TrainingInterrupted) as stop:
        return _fail(
            paths, redactor, 128 + stop.signum, interrupted_reason(stop.signum, paths.checkpoint_dir)
        )
    except BAD_INPUT_ERRORS as err:
        return _fail(paths, redactor, EXIT_BAD_INPUT, str(err))
    except Exception as err:
        log.error("training failed:\n%s", traceback.format_exc())
        reason = f"{_disk_full(paths)}training failed: {type(err).__name__}: {err}"
        return _fail(paths, redactor, EXIT_FAILED, reason)
    if forwarded is not None:
        return _fail(paths, redactor, 128 + forwarded, interrupted_reason(forwarded, paths.checkpoint_dir))
    if code != 0:
        error = error_from_output(output.stderr_tail())
        reason = f"{_disk_full(paths)}training failed: a training process exited with code {code}"
        return _fail(paths, redactor, EXIT_FAILED, f"{reason}: {error}" if error else reason)
    if r.rank == 0 and not (paths.model_dir / SUMMARY_NAME).is_file():
        return _fail(
            paths, redactor, EXIT_FAILED, f"training failed: it exited 0 but wrote no {SUMMARY_NAME}"
        )
    return EXIT_OK


def _launch(paths: Paths, cli_overrides: Sequence[str], redactor: Redactor, output: RedactedOutput) -> int:
    """The attempt under the run lock and with room kept for its failure reason. A launch refused
    because another run holds the tree leaves no failure file: the tree's results are the other run's."""
    with ExitStack() as held:
        try:
            lock = held.enter_context(RunLock(paths.checkpoint_dir))
        except AlreadyRunning as err:
            log.error("%s", err)
            return EXIT_BAD_INPUT
        except OSError as err:  # the checkpoint folder cannot be made, or the lock file opened
            reason = (
                f"fix {paths.checkpoint_dir}: it cannot hold this run's checkpoints ({err.strerror or err})"
            )
            return _fail(paths, redactor, EXIT_BAD_INPUT, reason)
        held.enter_context(sagemaker.failure_room(paths))
        return _attempt(paths, cli_overrides, redactor, output, lock)


def main(cli_overrides: Sequence[str] = ()) -> int:
    """`grpo-rlvr launch [key=value ...]`: everything else comes from the /opt/ml tree and the environment."""
    paths = Paths.from_env(os.environ)
    redactor = Redactor.from_env(os.environ)
    with RedactedOutput(redactor) as output, redacted_logging(redactor), _stop_on_signals():
        return _launch(paths, cli_overrides, redactor, output)
