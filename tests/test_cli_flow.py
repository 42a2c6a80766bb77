"""`python -m core flow run|start|status|runs|cancel` as a user runs them: separate processes, the local
stack's Prefect server in between (what one process records, the next one reads). In local development
the local user acts: the run, the CLI's audit row and the flow's (its registry move) all name them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import Settings
from core.identity.roles import local_user
from core.storage.audit import AuditTrail
from tests.conftest import LocalStack, free_port

pytestmark = pytest.mark.slow


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env["RAKUTEN_ROOT"] = str(root)
    env["COLUMNS"] = "200"  # no wrapped lines to match across
    return subprocess.run(
        [sys.executable, "-m", "core", "flow", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def bare_shell(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m core ARGS` from a shell that has none of the stack's variables."""
    bare = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=root,
        env=bare | {"COLUMNS": "200"} | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_shell_without_the_stacks_variables_finds_it(stack_project: LocalStack) -> None:
    """`up` ran with its ports in its environment; another shell in the project has none of them (the
    project's `.env` names the project only, as a user's own could): `status` and the flow commands
    find the stack on its ports all the same, through the record `up` keeps in .stack/. A port the
    command is given still wins."""
    root = stack_project.root
    recorded = json.loads((root / ".stack" / "stack.json").read_text())
    assert recorded["api_port"] == int(stack_project.env["RAKUTEN_API_PORT"])

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return bare_shell(root, *args, **env)

    # without RAKUTEN_ROOT the project would be this checkout (the installed package's); set in `.env`
    dotenv = root / ".env"
    dotenv.write_text(f"RAKUTEN_ROOT={root}\n")
    try:
        status = run("status")
        shown = " ".join(status.stderr.split())
        assert status.returncode == 0, status.stderr[-3000:]  # every program running and healthy
        assert "not answering" not in shown and f"{stack_project.api_url}/docs" in shown, shown

        listed = run("flow", "runs")
        assert listed.returncode == 0, listed.stderr[-3000:]
        assert "Recent runs" in listed.stderr and "does not answer" not in listed.stderr

        elsewhere = run("flow", "runs", RAKUTEN_PREFECT_PORT=str(free_port()))
        assert elsewhere.returncode == 2 and "does not answer" in elsewhere.stderr, elsewhere.stderr[-2000:]
    finally:
        dotenv.unlink()


def test_flow_run_then_status_from_another_process(stack_project: LocalStack) -> None:
    done = stack_project.cli("flow", "run", "training", "--set", "text.C=0.5", "--workers", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = re.search(r"Completed flow run ([0-9a-f-]{36})", done.stderr)
    assert run_id, done.stderr[-2000:]
    assert (stack_project.root / "data" / "processed" / "predictions.csv").is_file()

    status = stack_project.cli("flow", "status", run_id.group(1), "--logs", "50")
    assert status.returncode == 0, status.stderr[-3000:]
    out = status.stderr
    assert "training-pipeline" in out and "COMPLETED" in out and "step 5/5" in out
    for step in ("ingest", "features", "train", "evaluate", "predict"):
        assert step in out
    assert "promoted to champion" in out  # a log line of the evaluate step
    me = local_user().name
    assert f"by {me}" in " ".join(out.split())

    rows = AuditTrail.open(str(Settings(root=stack_project.root).audit_url)).read().to_dict("records")
    [cli_row] = [r for r in rows if r["entry"] == "cli" and r["target"] == f"run:{run_id.group(1)}"]
    [flow_row] = [r for r in rows if r["entry"] == "flow" and r["origin"] == run_id.group(1)]
    assert (cli_row["actor"], cli_row["action"], cli_row["outcome"]) == (me, "retrain", "done")
    assert (flow_row["actor"], flow_row["via"], flow_row["origin"]) == (me, "local", run_id.group(1))


def test_simulated_traffic_from_a_bare_shell_reaches_the_stacks_api(stack_project: LocalStack) -> None:
    """After the training above, the stack's API serves a champion: `simulate` from a shell without the
    stack's variables sends to it (on its own port), not to the default port."""
    root = stack_project.root
    (root / ".env").write_text(f"RAKUTEN_ROOT={root}\n")
    try:
        deadline = time.monotonic() + 60  # the API picks the new champion up within its alias check
        while True:
            sent = bare_shell(root, "simulate", "--n", "5", "--no-images", "--clients", "1")
            if sent.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
    finally:
        (root / ".env").unlink()
    out = " ".join(sent.stderr.split() + sent.stdout.split())
    assert sent.returncode == 0, out[-3000:]
    assert f"to {stack_project.api_url}" in out and "5 answered, 0 failed" in out, out[-2000:]


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    bad = cli(root, "run", "training", "--set", "text.C")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
    missing = cli(root, "status", "not-a-uuid")
    assert missing.returncode == 2 and "not a flow run id" in missing.stderr


def test_flow_start_refuses_a_second_start_and_status_follows_it(stack_project: LocalStack) -> None:
    """As the console does it: `flow start` hands the training to the stack's worker and returns; a
    second start is refused (exit 3); `status --follow` shows it to the end."""
    cli = stack_project.cli
    started = cli("flow", "start", "--no-follow")
    assert started.returncode == 0, started.stderr[-3000:]
    found = re.search(r"Started \S+ \(([0-9a-f-]{36})\) in local mode", started.stderr)
    assert found, started.stderr[-2000:]
    run_id = found.group(1)

    again = cli("flow", "start", "--no-follow")
    assert again.returncode == 3 and "already in progress" in again.stderr and run_id in again.stderr

    followed = cli("flow", "status", run_id, "--follow")
    assert followed.returncode == 0, followed.stderr[-3000:]
    assert "COMPLETED" in followed.stderr and "step 5/5" in followed.stderr
    assert "Model v" in followed.stderr  # the summary artifact at the end
    runner = (stack_project.root / ".stack" / "logs" / "runner.log").read_text(errors="replace")
    assert "flow run started in process" in runner  # forked by the fork server, imports done

    listed = cli("flow", "runs")
    assert listed.returncode == 0 and run_id in listed.stdout + listed.stderr
    assert cli("flow", "cancel", "not-a-uuid").returncode == 2


def test_without_a_running_stack_flow_commands_say_how_to_start_it(tmp_path: Path) -> None:
    root = tmp_path / "stopped"
    root.mkdir()
    env = {"RAKUTEN_ROOT": str(root), "RAKUTEN_PREFECT_PORT": str(free_port())}
    for args in (("flow", "runs"), ("flow", "start", "--no-follow"), ("flow", "run", "training")):
        done = LocalStack(root, env).cli(*args, timeout=120)
        assert done.returncode == 2, (args, done.stderr[-2000:])
        assert "does not answer" in done.stderr and "make console" in done.stderr, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
