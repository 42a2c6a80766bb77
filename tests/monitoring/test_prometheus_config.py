"""monitoring/: Prometheus's configuration and alert rules are valid (`promtool check`), every alert
fires and stays quiet as its unit tests say (`promtool test rules`), and every series the rules use
is one the API really exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from core.config import Settings
from tests.conftest import require_tool

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"


def _promtool() -> str:
    return require_tool("promtool", "Debian: apt-get install prometheus")


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "tests/alerts_test.yml"),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool(args: tuple[str, ...]) -> None:
    done = subprocess.run([_promtool(), *args], cwd=MONITORING, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"]}
    tests = yaml.safe_load((MONITORING / "tests" / "alerts_test.yml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])}
    firing = {
        t["alertname"]
        for case in tests["tests"]
        for t in case.get("alert_rule_test", [])
        if t.get("exp_alerts")
    }
    assert alerts == tested == firing


def test_rules_use_series_the_api_exports(trained_source: Path, tmp_path: Path) -> None:
    from core.serving.app import create_app

    settings = Settings(
        root=trained_source,
        models_dir=tmp_path / "models",
        reports_dir=tmp_path / "reports",
        inference_log_url=f"sqlite:///{tmp_path / 'log.db'}",
        api_alias_check_s=0,
    )
    (tmp_path / "reports" / "evidently").mkdir(parents=True)
    (tmp_path / "reports" / "evidently" / "latest.json").write_text(
        json.dumps(
            {
                "created_at": "2026-11-27T09:00:00+00:00",
                "drift_detected": False,
                "drifted_share": 0.0,
                "drift_share_threshold": 0.5,
                "current_rows": 1,
                "columns": [],
            }
        )
    )
    with TestClient(create_app(settings)) as client:
        client.post("/predict", json={"designation": "Piscine tubulaire Intex"})
        exported = {
            line.split(" ")[2]
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("# TYPE")
        }
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    used = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"\b((?:rakuten|http)_[a-z_]+)", rule["expr"])
    }
    exported_names = {re.sub(r"_total$", "", n) for n in exported} | exported
    assert used and used <= exported_names | {f"{n}_total" for n in exported_names}, used - exported_names
