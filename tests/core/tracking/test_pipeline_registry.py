"""The registry flow through the real pipeline: each run is tracked and registered, the gate compares it
with the champion re-scored on the same hold-out rows, and only a clearly better model is promoted.

One project tells the whole story (four trainings, a rollback), then each test checks one chapter.
Every model is trained on the same demo data, deterministically; the ranking on this data: a text
model held back by a small C (v1, C=0.01, 0.66 weighted F1) < the default, C searched by CV (v3, 0.69),
and a crippled text model — character unigrams, 1,000 words, tiny C — without the image view (v2,
0.21) fails the minimum.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.categories import CODES
from core.config import REGISTERED_MODEL_NAME, Settings
from core.data.demo.generator import DemoSpec, write_demo
from core.params import ImageParams, Params, TextParams
from core.pipeline import PipelineResult, run_pipeline
from core.pipeline.steps import predict_step
from core.tracking import store
from core.tracking.registry import AliasMove, Registry, open_registry
from tests.conftest import TRAINED_ROWS, clean_env

pytestmark = pytest.mark.slow  # four trainings, about a minute in all

WEAK = Params(text=TextParams(C=0.01))  # passes the minimum checks, leaves room to beat it
POOR = Params(  # below the minimum F1, classes at F1 = 0
    text=TextParams(
        C=0.0005,
        word_ngram_max=1,
        word_max_features=1000,
        char_ngram_min=1,
        char_ngram_max=1,
        char_max_features=1000,
        title_features=False,
    ),
    image=ImageParams(min_rows=10**9),
)
DEFAULT = Params()


@dataclass
class Chapter:
    result: PipelineResult
    report: dict[str, Any]  # reports/registry.json as this run left it
    champion: int | None
    challenger: int | None


@dataclass
class Story:
    settings: Settings
    chapters: list[Chapter] = field(default_factory=list)
    history_before_rollback: list[AliasMove] = field(default_factory=list)
    rollback: AliasMove | None = None
    predicted_after_rollback: int | None = None

    def registry(self) -> Registry:
        return open_registry(self.settings)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("registry-flow") / "project"
    root.mkdir()
    try:
        clean_env(mp, root)
        mp.chdir(root)
        write_demo(root / "data" / "raw", DemoSpec(rows=TRAINED_ROWS, seed=11), workers=2)
        told = Story(Settings(root=root))
        for params in (WEAK, POOR, DEFAULT, DEFAULT):
            result = run_pipeline(told.settings, params, workers=2)
            report = json.loads(told.settings.registry_outcome_file.read_text(encoding="utf-8"))
            registry = told.registry()
            told.chapters.append(Chapter(result, report, registry.champion(), registry.challenger()))
        registry = told.registry()
        told.history_before_rollback = registry.history()
        told.rollback = registry.rollback(actor="tester", reason="v3 misbehaves in production")
        told.predicted_after_rollback = predict_step(told.settings, workers=2).version
        yield told
    finally:
        mp.undo()


def _chapter(story: Story, version: int) -> Chapter:
    chapter = story.chapters[version - 1]
    assert chapter.result.evaluated.version == version
    return chapter


def test_first_model_becomes_champion(story: Story) -> None:
    first = _chapter(story, 1)
    assert first.report["promoted"] is True
    assert (first.report["champion_before"], first.report["champion_after"]) == (None, 1)
    assert "no current champion" in first.report["reasons"]
    assert first.report["champion_weighted_f1"] is None
    assert (first.champion, first.challenger) == (1, None)
    assert first.result.predicted.version == 1


def test_worse_model_is_refused_and_becomes_challenger(story: Story) -> None:
    v1, v2 = _chapter(story, 1), _chapter(story, 2)
    report = v2.report
    f1, champion_f1 = report["candidate_weighted_f1"], report["champion_weighted_f1"]
    assert f1 < 0.5 < champion_f1  # really worse, not just refused
    # The champion was re-scored on the same hold-out rows: the same number it was promoted with.
    assert champion_f1 == pytest.approx(v1.report["candidate_weighted_f1"], abs=1e-12)
    assert report["promoted"] is False
    assert (report["champion_before"], report["champion_after"]) == (1, 1)
    reasons = " | ".join(report["reasons"])
    assert f"weighted F1 {f1:.4f} < minimum 0.5000" in reasons
    assert f"does not beat champion: {f1:.4f} vs champion {champion_f1:.4f}" in reasons
    assert (v2.champion, v2.challenger) == (1, 2)
    assert v2.result.predicted.version == 1  # predictions still come from the champion


def test_better_model_is_promoted(story: Story) -> None:
    v1, v3 = _chapter(story, 1), _chapter(story, 3)
    report = v3.report
    assert report["promoted"] is True
    assert report["champion_weighted_f1"] == pytest.approx(v1.report["candidate_weighted_f1"], abs=1e-12)
    assert report["candidate_weighted_f1"] >= report["champion_weighted_f1"] + DEFAULT.promotion.margin
    assert (report["champion_before"], report["champion_after"]) == (1, 3)
    assert any(r.startswith("beats champion: ") for r in report["reasons"])
    assert (v3.champion, v3.challenger) == (3, 2)  # v2 stays the challenger until replaced
    assert v3.result.predicted.version == 3


def test_retraining_with_the_same_settings_ties_and_is_refused(story: Story) -> None:
    v3, v4 = _chapter(story, 3), _chapter(story, 4)
    report = v4.report
    assert report["candidate_weighted_f1"] == v3.report["candidate_weighted_f1"]  # deterministic training
    assert report["champion_weighted_f1"] == pytest.approx(report["candidate_weighted_f1"], abs=1e-12)
    assert report["promoted"] is False
    assert any("does not beat champion" in r and "(+0.0000, margin 0.0020)" in r for r in report["reasons"])
    assert (v4.champion, v4.challenger) == (3, 4)


def test_history_records_every_alias_move_with_its_reason(story: Story) -> None:
    history = story.history_before_rollback
    runs = [c.result.evaluated.run_id for c in story.chapters]
    assert [(m.seq, m.alias, m.kind, m.from_version, m.to_version) for m in history] == [
        (1, "champion", "promote", None, 1),
        (2, "challenger", "challenger", None, 2),
        (3, "champion", "promote", 1, 3),
        (4, "challenger", "challenger", 2, 4),
    ]
    assert [m.run_id for m in history] == runs[:4]
    assert {m.actor for m in history} == {"pipeline"}
    assert history[1].reason.startswith("not promoted: ")
    assert "minimum 0.5000" in history[1].reason
    assert history[2].reason.startswith("promoted: ")


def test_rollback_restores_the_previous_champion(story: Story) -> None:
    move = story.rollback
    assert move is not None
    assert (move.kind, move.from_version, move.to_version, move.actor) == ("rollback", 3, 1, "tester")
    registry = story.registry()
    assert (registry.champion(), registry.challenger()) == (1, 4)
    assert registry.history()[-1] == move
    assert story.predicted_after_rollback == 1


def test_run_records_params_metrics_tags_and_artifacts(story: Story, tmp_path: Path) -> None:
    client = store.connect(story.settings)
    v2 = _chapter(story, 2)
    run = client.get_run(v2.result.evaluated.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["text.C"] == "0.0005"
    assert params["promotion.margin"] == "0.002"
    assert params["model.encoder"] == "colour_edge"
    assert metrics["weighted_f1"] == pytest.approx(v2.report["candidate_weighted_f1"])
    assert metrics["champion_weighted_f1"] == pytest.approx(v2.report["champion_weighted_f1"])
    assert metrics["behaviour_pass_rate"] == pytest.approx(v2.report["behaviour_pass_rate"])
    trained_codes = {c for c in CODES if f"f1_{c}" in metrics}
    assert len(trained_codes) == len(CODES)  # the demo data holds every class
    assert all(0.0 <= metrics[f"f1_{c}"] <= 1.0 for c in CODES)
    assert {f"precision_{c}" for c in CODES} | {f"recall_{c}" for c in CODES} <= set(metrics)
    assert len(tags["data.fingerprint"]) >= 8 and tags["data.fingerprint"] != "unknown"
    local = client.download_artifacts(run.info.run_id, "training/training.json", str(tmp_path))
    training = json.loads(Path(local).read_text(encoding="utf-8"))
    assert int(tags["data.rows"]) == sum(training["rows"].values())  # every labelled row, all parts
    assert metrics["train_rows"] == training["rows"]["train"]
    assert tags["gate.promote"] == "false"

    artifacts = _artifact_paths(client, run.info.run_id)
    for expected in (
        "evaluation/metrics.json",
        "evaluation/confusion.csv",
        "evaluation/figures/confusion_matrix.png",
        "evaluation/behaviour.json",
        "training/training.json",
    ):
        assert expected in artifacts

    version = client.get_model_version(REGISTERED_MODEL_NAME, "2")
    assert version.run_id == run.info.run_id
    assert version.tags["gate"].startswith("not promoted: ")
    assert version.tags["weighted_f1"] == f"{v2.report['candidate_weighted_f1']:.4f}"
    assert version.tags["data.fingerprint"] == tags["data.fingerprint"]


def test_champion_loads_as_pyfunc_and_answers_products(story: Story, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a user would load it: MLflow pointed at the store by its own variable."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(story.settings.mlflow_tracking_uri))
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL_NAME}@champion")
    products = pd.DataFrame(
        {
            "designation": ["Piscine tubulaire Intex 366 x 122 cm", "Jeu de société Monopoly"],
            "description": ["Avec pompe de filtration.", ""],
        }
    )
    answers = model.predict(products)
    assert list(answers.columns[:3]) == ["prdtypecode", "category", "confidence"]
    assert list(answers.columns[3:]) == [f"p_{c}" for c in CODES]
    assert len(answers) == 2
    proba = answers[[f"p_{c}" for c in CODES]]
    assert proba.sum(axis=1).to_numpy() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert answers["confidence"].to_numpy() == pytest.approx(proba.max(axis=1).to_numpy())
    best = proba.idxmax(axis=1).str.removeprefix("p_").astype(int)
    assert answers["prdtypecode"].tolist() == best.tolist()
    assert answers["category"].map(lambda c: isinstance(c, str) and c != "").all()


def _artifact_paths(client: Any, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found
