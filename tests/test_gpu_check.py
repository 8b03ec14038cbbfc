"""The one-shot GPU acceptance run, in its dry mode: `GPU_CHECK_DRY=1 bench/gpu_check.sh` runs the same
script on the CPU with the tiny model and writes the same JSON; and the wheelhouse it installs from on
the GPU machine pins the lock's versions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import gpu_wheelhouse  # noqa: E402


def test_dry_mode_trains_measures_and_gives_every_check_a_verdict(tmp_path: Path) -> None:
    env = {**os.environ, "GPU_CHECK_DRY": "1", "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    done = subprocess.run(
        [str(REPO / "bench" / "gpu_check.sh")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    run = report["run"]
    assert report["dry_run"] is True and run["global_step"] == 2
    assert run["completion_tokens_per_s"] > 0 and run["optimizer_step_s"] > 0
    assert run["peak_gpu_memory_gib"] is None  # no GPU in the dry mode
    assert run["stop_strings"] == ["\nQuestion:"]  # the stop rule was on
    checks = report["checks"]
    assert set(checks) == {
        "1_no_silent_cpu",
        "2_quantized_vllm_refused",
        "3_4_zero3_qlora",
        "5_tied_head_one_reading",
        "6_bench_rows_measure_what_they_name",
    }
    assert checks["3_4_zero3_qlora"].startswith("skipped: needs CUDA")
    assert all(verdict.startswith("pass") for name, verdict in checks.items() if name != "3_4_zero3_qlora")


def test_the_wheelhouse_pins_the_lock_versions() -> None:
    pins = gpu_wheelhouse.pins()
    lock = (REPO / "docker" / "requirements.lock").read_text()
    assert len(pins) == len(gpu_wheelhouse.PACKAGES)
    for pin in pins:
        assert re.search(rf"^{re.escape(pin)} ", lock, re.M), pin
    assert any(p.startswith("trl==") for p in pins) and any(p.startswith("datasets==") for p in pins)
