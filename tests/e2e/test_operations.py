"""What an operator does in the console, in a real browser, against the session's console and API:
click Retrain and watch the run reach Completed; send traffic through the API and open the drift
report generated from it; promote a version and roll it back. Each test checks the platform changed
for real (registry, drift reports, the API's model), stands alone and runs in any order."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from core.identity.roles import local_user
from core.storage.audit import AuditFilter, AuditTrail
from core.storage.drift_reports import DriftSummary
from tests.e2e.conftest import Console, choose, exceptions, open_page, snapshot

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 240
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


# --- the platform as it is, read outside the console ------------------------------------------------
def _client(root: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"  # the console's default store (no RAKUTEN_ in its env)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def registered_versions(root: Path) -> list[int]:
    found = _client(root).search_model_versions(f"name='{REGISTERED_MODEL_NAME}'")
    return sorted(int(v.version) for v in found)


def champion(root: Path) -> int:
    return int(_client(root).get_model_version_by_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS).version)


def drift_reports(root: Path) -> list[DriftSummary]:
    index = root / "reports" / "evidently" / "index.json"
    entries = json.loads(index.read_text(encoding="utf-8")) if index.is_file() else []
    return [DriftSummary.from_dict(e) for e in entries]


def logged_predictions(root: Path) -> int:
    import sqlite3

    database = root / "data" / "inference.db"
    if not database.is_file():
        return 0
    with sqlite3.connect(database) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
        except sqlite3.OperationalError:  # no table before the first prediction
            return 0


def served_version(console: Console) -> int:
    return int(httpx.get(f"{console.api_url}/model", timeout=10).json()["version"])


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s:.0f} s"
        time.sleep(0.3)


# --- Retrain ----------------------------------------------------------------------------------------
def test_retrain_runs_to_completed(page: Any, console: Console, screenshots: Path) -> None:
    """Retrain starts a run on the local stack's worker; the live view follows it step by step to Completed,
    with the run's summary, and the run registered a new model version."""
    before = registered_versions(console.root)
    open_page(page, console, "pipeline_runs", "Pipeline runs")
    page.get_by_text("Local stack").first.wait_for()
    page.get_by_role("button", name="Retrain", exact=True).click()
    flash = page.get_by_text(re.compile(r"Started training run training-[0-9a-f]{8}\."))
    flash.first.wait_for()
    found = re.search(r"training-[0-9a-f]{8}", flash.first.inner_text())
    assert found, flash.first.inner_text()
    name = found.group(0)

    header = page.get_by_text(re.compile(rf"^{name} — ")).first
    bar = page.locator('[data-testid="stProgress"]').first
    states: list[str] = []
    labels: set[str] = set()
    shot = False
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        assert not exceptions(page), exceptions(page)
        text = header.inner_text(timeout=15_000)
        state = next((s for s in (*FINAL, "RUNNING", "PENDING", "SCHEDULED") if s in text), text)
        if not states or states[-1] != state:
            states.append(state)
        if state == "RUNNING":
            labels.add(bar.inner_text(timeout=5_000).strip())
            if not shot:  # once, mid-run
                snapshot(page, screenshots / "retrain-running.png")
                shot = True
        if state in FINAL:
            break
        assert time.monotonic() < deadline, f"{name} still {state} after {RUN_TIMEOUT_S} s; seen {states}"
        page.wait_for_timeout(500)

    logs = page.locator('[data-testid="stCode"]').all_inner_texts()
    assert state == "COMPLETED", f"{name} ended {state}: {page.get_by_role('alert').all_inner_texts()} {logs}"
    assert "RUNNING" in states, states  # the page showed the run live, not only its outcome
    assert any(re.fullmatch(r"step [0-4] of 5(: \w+)?", label) for label in labels), labels
    assert "COMPLETED" in header.inner_text()
    assert bar.inner_text().strip() == "step 5 of 5"
    new = max(before) + 1
    assert registered_versions(console.root) == [*before, new]
    # the run's summary (.first: a rerun may briefly show the previous drawing beside the new one)
    page.get_by_role("heading", name=re.compile(rf"^Model v{new}: ")).first.wait_for()
    from playwright.sync_api import expect

    # once the page settles: while the whole page is drawn again after the run ended, Streamlit keeps
    # the previous drawing's elements (faded) beside the new ones until the script finishes
    expect(page.get_by_role("button", name="Re-run with its parameters")).to_have_count(1)
    assert not exceptions(page)
    snapshot(page, screenshots / "retrain-completed.png")


# --- Drift ------------------------------------------------------------------------------------------
def simulate(console: Console, *args: str) -> str:
    """`python -m core simulate` against the session's API, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env |= {"RAKUTEN_ROOT": str(console.root), "COLUMNS": "200"}
    command = [sys.executable, "-m", "core", "simulate", "--url", console.api_url, *args]
    done = subprocess.run(command, env=env, cwd=console.root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_drift_report_from_api_traffic(page: Any, console: Console, screenshots: Path) -> None:
    """Shifted traffic sent through the API, then Generate report now: the new report is listed,
    picked in the Report box, and Evidently's own report shows embedded in the page."""
    from playwright.sync_api import expect

    n = 244  # the demo project's whole test set, shifted
    logged = logged_predictions(console.root)
    out = simulate(console, "--n", str(n), "--drifted", "--seed", "1", "--clients", "4")
    assert f"{n} answered, 0 failed" in out, out[-2000:]
    wait_until(lambda: logged_predictions(console.root) >= logged + n, 30, "the API's inference log")
    known = {r.html for r in drift_reports(console.root)}

    open_page(page, console, "drift", "Drift")
    page.get_by_role("button", name="Generate report now").click()
    failed = page.locator('[data-testid="stException"]').or_(page.get_by_text("No report", exact=True))
    page.get_by_text("New report: ").or_(failed).first.wait_for(timeout=180_000)
    assert not failed.count(), page.locator("[data-testid=stException], [role=alert]").all_inner_texts()
    new = [r for r in drift_reports(console.root) if r.html not in known]
    assert len(new) == 1, [r.html for r in new]
    report = new[0]
    # the window also holds the other tests' predictions (a photo sent alone among them: no title)
    assert report.current_rows >= n and report.drift_detected, report
    page.get_by_text("Drift detected", exact=True).wait_for()  # the latest report's verdict
    page.get_by_role("button", name="Retrain now").wait_for()  # offered, not clicked

    label = f"{_when(report)} · 🔴 drift"
    picker = page.get_by_label("Report", exact=True)
    choose(page, picker, page.get_by_role("option", name=label, exact=True))
    expect(picker).to_have_value(label)

    frame = page.frame_locator('iframe[data-testid="stIFrame"]').frame_locator("iframe")  # sandboxed inside
    frame.get_by_text("Dataset Drift").first.wait_for(timeout=60_000)
    drifted = next(c.column for c in report.columns if c.drifted)
    frame.get_by_text(drifted, exact=True).first.wait_for()
    assert not exceptions(page)
    snapshot(page, screenshots / "drift-report.png")


def _when(report: DriftSummary) -> str:
    import pandas as pd

    return str(pd.Timestamp(report.created_at).strftime("%Y-%m-%d %H:%M:%S"))


# --- Promote and roll back --------------------------------------------------------------------------
def champion_metric(page: Any) -> Any:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Champion")
    return metric.locator('[data-testid="stMetricValue"]')


def test_promote_then_roll_back(page: Any, console: Console, screenshots: Path) -> None:
    """Promote a version that is not the champion (reason, confirmation), then roll back: the page,
    the registry's champion alias and the version the API serves follow each move."""
    from playwright.sync_api import expect

    was = champion(console.root)
    target = max(v for v in registered_versions(console.root) if v != was)
    open_page(page, console, "models", "Models")
    expect(champion_metric(page)).to_have_text(f"v{was}")

    promote = page.locator('[data-testid="stColumn"]').filter(has_text="Promote a version")
    choose(
        page,
        promote.get_by_label("Version to promote"),
        page.get_by_role("option", name=re.compile(rf"^v{target} · ")),
    )
    promote.get_by_label("Reason (required)").fill("e2e: promote by hand")
    promote.get_by_text(f"I confirm: v{target} becomes the champion").click()
    promote.get_by_role("button", name=f"Promote v{target}").click()
    page.get_by_text(f"v{target} is now the champion (was v{was}).").wait_for()
    expect(champion_metric(page)).to_have_text(f"v{target}")
    assert champion(console.root) == target
    wait_until(lambda: served_version(console) == target, 30, f"the API serving v{target}")
    assert not exceptions(page)
    snapshot(page, screenshots / "models-promoted.png")

    rollback = page.locator('[data-testid="stColumn"]').filter(has_text="Roll back the champion")
    rollback.get_by_text(f"Champion v{target} → back to v{was}.").wait_for()
    rollback.get_by_label("Reason (required)").fill("e2e: roll back")
    rollback.get_by_text(f"I confirm: roll back from v{target}").click()
    rollback.get_by_role("button", name="Roll back").click()
    page.get_by_text(f"Rolled back: v{was} is champion again.").wait_for()
    expect(champion_metric(page)).to_have_text(f"v{was}")
    assert champion(console.root) == was
    wait_until(lambda: served_version(console) == was, 30, f"the API serving v{was} again")
    assert not exceptions(page)
    snapshot(page, screenshots / "models-rolled-back.png")
    # both in the audit trail (the Audit page's source), with who and why
    trail = AuditTrail.open(f"sqlite:///{console.root / 'data' / 'inference.db'}")
    moves = trail.read(AuditFilter(actions=["promote", "rollback"], entries=["console"]))
    latest = moves.iloc[:2][["action", "target", "outcome", "actor"]].values.tolist()
    assert latest == [
        ["rollback", f"model:v{was}", "done", local_user().name],
        ["promote", f"model:v{target}", "done", local_user().name],
    ]
    assert moves.iloc[0]["reason"] == "e2e: roll back"
    assert moves.iloc[1]["reason"].startswith("e2e: promote by hand")
