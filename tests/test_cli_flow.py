"""`python -m core flow run|status` as a user runs them: separate processes, the project's embedded
Prefect store in between (what one process records, the next one reads)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.data.demo.generator import DemoSpec, write_demo

pytestmark = pytest.mark.slow


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env["RAKUTEN_ROOT"] = str(root)
    env["COLUMNS"] = "200"  # no wrapped lines to match across
    return subprocess.run(
        [sys.executable, "-m", "core", "flow", *args], cwd=root, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_flow_run_then_status_from_another_process(tmp_path: Path) -> None:
    root = tmp_path / "project"
    write_demo(root / "data" / "raw", DemoSpec(rows=1500, seed=11), workers=2)
    done = cli(root, "run", "training", "--set", "text.C=0.5", "--workers", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = re.search(r"Completed flow run ([0-9a-f-]{36})", done.stderr)
    assert run_id, done.stderr[-2000:]
    assert (root / ".prefect").is_dir()  # the project's own embedded Prefect store
    assert (root / "data" / "processed" / "predictions.csv").is_file()

    status = cli(root, "status", run_id.group(1), "--logs", "50")
    assert status.returncode == 0, status.stderr[-3000:]
    out = status.stderr
    assert "training-pipeline" in out and "COMPLETED" in out and "step 6/6" in out
    for step in ("ingest", "validate", "features", "train", "evaluate", "predict"):
        assert step in out
    assert "promoted to champion" in out  # a log line of the evaluate step


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    bad = cli(root, "run", "training", "--set", "text.C")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
    missing = cli(root, "status", "not-a-uuid")
    assert missing.returncode == 2 and "not a flow run id" in missing.stderr


def test_flow_start_refuses_a_second_start_and_status_follows_it(tmp_path: Path) -> None:
    """Embedded mode, as the console does it: `flow start` hands the training to a background
    process and returns; a second start is refused (exit 3); `status --follow` shows it to the end."""
    root = tmp_path / "project"
    write_demo(root / "data" / "raw", DemoSpec(rows=1500, seed=11), workers=2)
    started = cli(root, "start", "--no-follow")
    assert started.returncode == 0, started.stderr[-3000:]
    found = re.search(r"Started \S+ \(([0-9a-f-]{36})\) in embedded mode", started.stderr)
    assert found, started.stderr[-2000:]
    run_id = found.group(1)

    again = cli(root, "start", "--no-follow")
    assert again.returncode == 3 and "already in progress" in again.stderr and run_id in again.stderr

    followed = cli(root, "status", run_id, "--follow")
    assert followed.returncode == 0, followed.stderr[-3000:]
    assert "COMPLETED" in followed.stderr and "step 6/6" in followed.stderr
    assert "promoted to champion" in followed.stderr  # the evaluate step's log line, streamed
    assert "Model v1" in followed.stderr  # the summary artifact at the end

    listed = cli(root, "runs")
    assert listed.returncode == 0 and run_id in listed.stdout + listed.stderr
    assert cli(root, "cancel", "not-a-uuid").returncode == 2
