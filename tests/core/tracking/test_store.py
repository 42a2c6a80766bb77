"""The MLflow adapter against a real (SQLite) store: a client made from Settings only — nothing set
process-wide — and a run's values logged within MLflow's batch limits."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

from core.config import Settings
from core.tracking import store


def test_a_client_comes_from_settings_and_sets_nothing_process_wide(tmp_path: Path) -> None:
    before = dict(os.environ), mlflow.get_tracking_uri()
    settings = Settings(root=tmp_path)
    client = store.connect(settings)
    assert client.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert store.ensure_experiment(client, settings) == store.ensure_experiment(client, settings)
    assert (dict(os.environ), mlflow.get_tracking_uri()) == before  # no exported URI for the next reader


def test_a_run_with_more_values_than_one_batch_takes_keeps_them_all(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    client = store.connect(settings)
    run = client.create_run(store.ensure_experiment(client, settings))
    training = store.TrainingRun(
        name="many",
        params={f"p{i}": i for i in range(250)},  # MLflow takes at most 100 params per batch
        metrics={f"m{i}": i / 10 for i in range(1_500)},  # and 1,000 metrics
        tags={},
        artifact_dirs={},
        artifact_files={},
        classifier_file=tmp_path / "unused",
    )
    store._log_values(client, run.info.run_id, training)
    data = client.get_run(run.info.run_id).data
    assert len(data.params) == 250 and data.params["p249"] == "249"
    assert len(data.metrics) == 1_500 and data.metrics["m1499"] == 149.9
