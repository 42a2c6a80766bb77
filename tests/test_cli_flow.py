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
