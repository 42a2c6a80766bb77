"""prefect.yaml stays true: each deployment's entrypoint is a flow of `core.orchestration.flows` whose
parameters exist, monitoring is scheduled daily at 09:00, and no two trainings can run at once."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow

ROOT = Path(__file__).resolve().parents[3]


def deployments() -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {d["name"]: d for d in spec["deployments"]}


def test_entrypoints_are_flows_with_those_parameters() -> None:
    for name, deployment in deployments().items():
        path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, function)
        assert isinstance(flow, Flow), name
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(deployment.get("parameters") or {}) <= accepted, name
        assert deployment["work_pool"]["name"] == "rakuten-process"
        assert deployment["concurrency_limit"]["limit"] == 1


def test_monitoring_is_daily_and_training_on_demand() -> None:
    found = deployments()
    assert [s["cron"] for s in found["monitor-and-retrain"]["schedules"]] == ["0 9 * * *"]
    assert not found["training"].get("schedules")
