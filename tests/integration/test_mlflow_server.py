"""The registry flow against a real MLflow server: runs, artifacts and models go through the server's
REST API and artifact proxy, exactly as the full stack uses it (the console, API and flows as clients)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.categories import CODES
from core.config import REGISTERED_MODEL_NAME, Settings
from core.data.demo.generator import DemoSpec, write_demo
from core.params import Params, TextParams
from core.pipeline import run_pipeline
from core.tracking import store
from core.tracking.registry import Registry, RegistryError, open_registry
from tests.conftest import TRAINED_ROWS

pytestmark = pytest.mark.slow  # a server and two trainings: 20–60 s here, depending on load


def test_settings_leave_the_artifact_root_to_the_server(project: Path) -> None:
    """A local default would make every client write artifacts to its own disk, out of the others' reach."""
    settings = Settings(root=project, mlflow_tracking_uri="http://mlflow:5000")
    assert settings.mlflow_artifact_location is None
    assert settings.mode == "connected"


def test_pipeline_registry_flow_through_the_server(
    mlflow_server: str, mlflow_server_dir: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(root=project, mlflow_tracking_uri=mlflow_server)
    write_demo(settings.data_dir, DemoSpec(rows=TRAINED_ROWS, seed=11), workers=2)

    first = run_pipeline(settings, Params(text=TextParams(C=0.01)), workers=2).evaluated
    assert (first.version, first.decision.promote, first.champion_after) == (1, True, 1)
    second = run_pipeline(settings, Params(), workers=2).evaluated  # C searched by CV is better here
    assert second.version == 2
    assert second.decision.promote, second.decision.reasons
    assert second.decision.champion_f1 == pytest.approx(first.decision.candidate_f1, abs=1e-12)
    report = json.loads(settings.registry_outcome_file.read_text(encoding="utf-8"))
    assert (report["version"], report["champion_before"], report["champion_after"]) == (2, 1, 2)

    client = store.connect(settings)
    registry = Registry(client, REGISTERED_MODEL_NAME, settings.registry_lock)
    assert [(v.version, v.aliases) for v in registry.versions()] == [(2, ["champion"]), (1, [])]
    assert [(m.kind, m.from_version, m.to_version, m.run_id) for m in registry.history()] == [
        ("promote", None, 1, first.run_id),
        ("promote", 1, 2, second.run_id),
    ]

    # Artifacts went through the server into its artifact store, none onto the client's disk.
    run = client.get_run(second.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    served = mlflow_server_dir / "artifacts"
    stored = {p.relative_to(served).as_posix() for p in served.rglob("*")}
    assert any(p.endswith(f"{second.run_id}/artifacts/evaluation/metrics.json") for p in stored)
    assert not (project / "mlartifacts").exists()
    assert run.data.tags["data.fingerprint"] != "unknown"
    assert run.data.params["text.C"] == "[0.25, 0.5, 1.0]" and "chosen.text.C" in run.data.params
    assert {f"f1_{c}" for c in CODES} <= set(run.data.metrics)

    move = registry.rollback(actor="tester", reason="v2 misbehaves")
    assert (move.from_version, move.to_version) == (2, 1)
    reopened = open_registry(settings)
    assert reopened.champion() == 1
    assert reopened.history()[-1] == move
    with pytest.raises(RegistryError, match="Nothing to roll back"):
        reopened.rollback(actor="tester")

    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # as a user of the server loads it
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL_NAME}@champion")
    assert model.metadata.run_id == first.run_id
    answers = model.predict(pd.DataFrame({"designation": ["Piscine tubulaire Intex"], "description": [""]}))
    assert list(answers.columns) == ["prdtypecode", "category", "confidence", *(f"p_{c}" for c in CODES)]
    assert int(answers.loc[0, "prdtypecode"]) in CODES
    assert store.load_classifier(settings, alias="champion").classes.tolist() == sorted(CODES)
