"""The console's read side of MLflow: runs table, run details (with the evaluation artifacts), the
comparisons built from them, and registered versions with their aliases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from core.config import EXPERIMENT_NAME, Settings
from core.models.evaluate import Evaluation
from core.params import PromotionParams
from core.tracking import store
from core.tracking.registry import Registry, VersionInfo, open_registry
from core.tracking.training_runs import (
    RUN_COLUMNS,
    RunDetail,
    best_runs,
    champion_of,
    confusion_difference,
    data_differences,
    history_table,
    manual_gate,
    metric_comparison,
    param_differences,
    per_class_f1,
    run_details,
    runs_table,
    tracking_store_missing,
    versions_table,
)


def _registry(settings: Settings) -> Registry:
    return open_registry(settings)


def _detail(name: str, params: dict[str, str], metrics: dict[str, float] | None = None) -> RunDetail:
    per_class = pd.DataFrame(
        {
            "name": ["a", "b"],
            "precision": [1.0, 0.5],
            "recall": [1.0, 0.5],
            "f1": [1.0, 0.5],
            "support": [3, 2],
        },
        index=pd.Index([10, 40], name="code"),
    )
    return RunDetail(f"{name}-id-000", name, params, metrics or {}, {}, per_class=per_class)


# --- against the session's trained project (one run, champion v1) ------------------------------------
def test_runs_table_has_one_row_per_run_with_lineage_and_version(trained_project: Path) -> None:
    settings = Settings()
    registry = _registry(settings)
    table = runs_table(registry.client, EXPERIMENT_NAME, registry.versions())
    assert list(table.columns) == list(RUN_COLUMNS)
    assert len(table) == 1
    row = table.iloc[0]
    evaluation = Evaluation.load(settings.evaluation_dir)
    assert row["weighted_f1"] == pytest.approx(evaluation.weighted_f1)
    assert row["status"] == "FINISHED"
    assert row["fit_s"] > 0
    assert row["version"] == 1
    assert row["aliases"] == "champion"
    assert row["gate"] == "promote"
    assert row["text.C"] in {"0.25", "0.5", "1.0"}  # the value the cross-validated search chose
    assert len(row["data"]) == 16
    assert row["rows"] > 0


def test_run_details_bring_params_metrics_and_the_evaluation_tables(trained_project: Path) -> None:
    settings = Settings()
    registry = _registry(settings)
    run_id = registry.versions()[0].run_id
    assert run_id
    (detail,) = run_details(registry.client, [run_id])
    evaluation = Evaluation.load(settings.evaluation_dir)
    assert detail.params["text.C"] == "[0.25, 0.5, 1.0]"  # candidates, searched by cross-validation
    assert detail.params["chosen.text.C"] in {"0.25", "0.5", "1.0"}
    assert set(detail.calibration) >= {"fused", "tfidf"}
    assert detail.metrics["weighted_f1"] == pytest.approx(evaluation.weighted_f1)
    assert not any(k.startswith("mlflow.") for k in detail.tags)
    pd.testing.assert_frame_equal(detail.per_class, evaluation.per_class, check_names=False)
    assert detail.confusion.to_numpy().tolist() == evaluation.confusion.to_numpy().tolist()
    assert list(detail.confusion.index) == list(detail.confusion.columns) == list(evaluation.confusion.index)
    assert param_differences([detail, detail]).empty


def test_versions_and_history_tables(trained_project: Path) -> None:
    registry = _registry(Settings())
    versions = registry.versions()
    assert [v.aliases for v in versions] == [["champion"]]
    assert champion_of(versions) is versions[0]
    table = versions_table(versions)
    assert table.loc[0, "aliases"] == ["champion"]
    assert table.loc[0, "gate"].startswith("promoted")
    history = history_table(registry.history())
    assert history[["kind", "to_version", "actor"]].values.tolist() == [["promote", 1, "pipeline"]]
    assert str(history["at"].dtype).startswith("datetime64")


# --- a store of our own: runs without artifacts, unknown experiment -------------------------------------
def test_runs_without_artifacts_or_registration(project: Path) -> None:
    settings = Settings()
    assert tracking_store_missing(str(settings.mlflow_tracking_uri))
    client = store.connect(settings)
    assert runs_table(client, "no-such-experiment").empty
    experiment = store.ensure_experiment(client, settings)
    run = client.create_run(experiment, run_name="bare")
    client.log_param(run.info.run_id, "text.C", "1.0")
    client.set_terminated(run.info.run_id)
    assert not tracking_store_missing(str(settings.mlflow_tracking_uri))

    table = runs_table(client, EXPERIMENT_NAME)
    assert table["run"].tolist() == ["bare"]
    assert pd.isna(table.loc[0, "version"]) and table.loc[0, "gate"] == ""
    (detail,) = run_details(client, [run.info.run_id])
    assert detail.per_class.empty and detail.confusion.empty
    assert per_class_f1([detail]).empty


# --- pure comparisons ------------------------------------------------------------------------------
def test_param_differences_keeps_only_what_differs() -> None:
    a = _detail("a", {"text.C": "0.5", "seed": "42", "image.C": "1"})
    b = _detail("b", {"text.C": "0.1", "seed": "42"})
    diff = param_differences([a, b])
    assert list(diff.index) == ["image.C", "text.C"]
    assert diff.loc["text.C"].tolist() == ["0.5", "0.1"]
    assert diff.loc["image.C", b.label] is None
    assert list(diff.columns) == [a.label, b.label]


def test_data_differences_name_what_the_runs_were_trained_on() -> None:
    params = {"text.C": "0.5"}
    a = RunDetail("a-id-000", "a", params, {}, {"data.fingerprint": "d1", "data.rows": "100"})
    b = RunDetail(
        "b-id-000",
        "b",
        params,
        {},
        {
            "data.fingerprint": "d2",
            "data.rows": "100",
            "data.corrections": "3",
            "data.corrections_sha256": "0123456789abcdef",
        },
    )
    assert param_differences([a, b]).empty  # same parameters…
    diff = data_differences([a, b])  # …but not the same data
    assert list(diff.index) == ["data version", "reviewed labels applied", "corrections file"]
    assert diff.loc["data version"].tolist() == ["d1", "d2"]
    assert diff.loc["reviewed labels applied"].tolist() == ["0", "3"]
    assert diff.loc["corrections file"].tolist() == ["none", "0123456789ab"]
    assert data_differences([a, a]).empty


def test_metric_comparison_and_best_run_per_metric() -> None:
    a = _detail("a", {}, {"weighted_f1": 0.6, "log_loss": 1.2})
    b = _detail("b", {}, {"weighted_f1": 0.7, "log_loss": 1.5})
    table = metric_comparison([a, b])
    assert list(table.index) == ["weighted_f1", "log_loss"]  # metrics no run has are dropped
    best = best_runs(table)
    assert best["weighted_f1"] == b.label
    assert best["log_loss"] == a.label  # lower is better

    tied = _detail("c", {}, {"weighted_f1": 0.7, "log_loss": 1.3})
    best = best_runs(metric_comparison([a, b, tied]))
    assert "weighted_f1" not in best  # b and c share the best value: no winner to highlight
    assert best["log_loss"] == a.label


def test_per_class_f1_is_long_for_charting() -> None:
    long = per_class_f1([_detail("a", {}), _detail("b", {})])
    assert list(long.columns) == ["run", "code", "category", "f1", "support"]
    assert len(long) == 4
    assert long["category"].iloc[0].startswith("10 ·")


def test_confusion_difference_aligns_codes_and_normalises_rows() -> None:
    a = pd.DataFrame([[8, 2], [0, 10]], index=[10, 40], columns=[10, 40])
    b = pd.DataFrame([[4, 0, 1], [0, 5, 0], [0, 0, 2]], index=[10, 40, 50], columns=[10, 40, 50])
    diff = confusion_difference(a, b)
    assert list(diff.index) == list(diff.columns) == [10, 40, 50]
    assert diff.loc[10, 10] == pytest.approx(0.8 - 0.8)
    assert diff.loc[10, 40] == pytest.approx(-0.2)
    assert diff.loc[50, 50] == pytest.approx(1.0)
    counts = confusion_difference(a, b, normalize=False)
    assert counts.loc[10, 10] == -4


def test_manual_gate_compares_recorded_scores() -> None:
    now = datetime.now(UTC)
    champion = VersionInfo(1, "r1", now, ["champion"], {"weighted_f1": "0.7000"})
    worse = VersionInfo(2, "r2", now, [], {"weighted_f1": "0.6500"})
    better = VersionInfo(3, "r3", now, [], {"weighted_f1": "0.7500"})
    rules = PromotionParams()
    refused = manual_gate(worse, champion, rules)
    assert refused is not None and not refused.promote
    assert "does not beat champion" in refused.summary
    accepted = manual_gate(better, champion, rules)
    assert accepted is not None and accepted.promote
    assert manual_gate(VersionInfo(4, None, now, []), champion, rules) is None


def test_tracking_store_missing_only_for_absent_sqlite_files(tmp_path: Path) -> None:
    assert tracking_store_missing(f"sqlite:///{tmp_path / 'nope.db'}")
    (tmp_path / "here.db").touch()
    assert not tracking_store_missing(f"sqlite:///{tmp_path / 'here.db'}")
    assert not tracking_store_missing("http://mlflow:5000")


def test_champion_since_is_the_last_move_that_gave_it_the_alias() -> None:
    from core.tracking.registry import AliasMove
    from core.tracking.training_runs import champion_since, weighted_f1

    created = datetime(2026, 1, 1, tzinfo=UTC)
    v2 = VersionInfo(2, "r2", created, ["champion"], {"weighted_f1": "0.8123"})
    moves = [
        AliasMove(1, "champion", None, 2, "2026-01-02T10:00:00+00:00", "promote", "pipeline", "first"),
        AliasMove(2, "champion", 2, 3, "2026-01-03T10:00:00+00:00", "promote", "console", "better"),
        AliasMove(3, "challenger", None, 2, "2026-01-03T11:00:00+00:00", "challenger", "pipeline", "x"),
        AliasMove(4, "champion", 3, 2, "2026-01-04T10:00:00+00:00", "rollback", "console", "worse"),
    ]
    assert champion_since(moves, v2) == datetime(2026, 1, 4, 10, tzinfo=UTC)  # the rollback, not the first
    assert champion_since([], v2) == created  # nothing recorded: since it was registered
    assert weighted_f1(v2) == pytest.approx(0.8123)
    assert weighted_f1(VersionInfo(3, None, created, [])) is None
