"""Behavioural tests of the trained model (minimum functionality, invariance, direction), and proof that
the behaviour suite fails a model that learned the wrong labels — so the promotion gate can say no."""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.io import load_model
from core.models.behaviour import DIRECTION, FUNCTIONALITY, run_behaviour
from core.models.classifier import ProductClassifier
from core.models.train import FILES
from core.params import Params
from core.tracking.gate import Candidate, decide

MIN_RATE = Params().promotion.min_behaviour_pass_rate

# Hand-written products, not in the suite the gate runs: (designation, description, code).
PRODUCTS = (
    ("Bâche pour piscine hors sol ronde 4,57 m", "Bâche d'hiver pour piscine.", 2583),
    ("Croquettes pour chien adulte 15 kg", "Aliment complet pour chien.", 2220),
    ("Roman policier Agatha Christie livre de poche", "Livre d'occasion en bon état.", 10),
    ("Jeu vidéo PS4 Fifa 19", "Jeu pour console PlayStation 4.", 40),
    ("Magazine Paris Match n° 3012", "Revue hebdomadaire d'actualité.", 2280),
    ("Voiture radiocommandée 4x4 tout terrain", "Voiture RC électrique.", 1300),
    ("Puzzle 1000 pièces paysage", "Puzzle pour adultes.", 1281),
    ("Carte Magic The Gathering rare", "Carte à collectionner.", 1160),
    ("Lampe de chevet en céramique", "Luminaire pour chambre.", 2060),
)


@pytest.fixture(scope="module")
def model(trained_source: Path) -> ProductClassifier:
    classifier = load_model(trained_source / "models" / "candidate" / FILES["classifier"])
    assert isinstance(classifier, ProductClassifier)
    return classifier


def _frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["designation", "description"])


def _predict(model: ProductClassifier, rows: list[tuple[str, str]]) -> np.ndarray:
    return model.classes[model.text_proba(_frame(rows)).argmax(1)]


# --- the suite the gate runs ------------------------------------------------------------------------
def test_trained_model_passes_the_behaviour_suite(model: ProductClassifier) -> None:
    report = run_behaviour(model)
    by_name = {s.name: s for s in report.suites}
    assert set(by_name) == {"minimum functionality", "invariance", "direction"}
    assert report.pass_rate >= MIN_RATE, report.to_dict()
    assert by_name["invariance"].pass_rate == 1.0, by_name["invariance"].failures
    assert by_name["direction"].pass_rate == 1.0, by_name["direction"].failures
    assert by_name["minimum functionality"].total == len(FUNCTIONALITY)
    assert by_name["direction"].total == len(DIRECTION)


def test_recorded_behaviour_report_is_the_models(trained_source: Path, model: ProductClassifier) -> None:
    recorded = json.loads((trained_source / "reports" / "evaluation" / "behaviour.json").read_text())
    assert recorded == json.loads(json.dumps(run_behaviour(model).to_dict()))


# --- our own checks -----------------------------------------------------------------------------------
def test_minimum_functionality_on_new_products(model: ProductClassifier) -> None:
    pred = _predict(model, [(t, d) for t, d, _ in PRODUCTS])
    wrong = [(t, code, int(p)) for (t, _, code), p in zip(PRODUCTS, pred, strict=True) if p != code]
    assert len(wrong) <= 1, wrong


@pytest.mark.parametrize(
    "noisy",
    [
        lambda t, d: (t.upper(), d.upper()),
        lambda t, d: (f"<h2>{t}</h2>", f'<div><span class="a-list-item">{d}</span><br></div>'),
        lambda t, d: (t.replace("é", "&eacute;").replace("'", "&#39;"), d.replace("é", "&amp;eacute;")),
        lambda t, d: (t.replace(" ", "\u00a0 "), f"\n\t{d}  \n"),
        lambda t, d: (t.replace("é", "Ã©"), d),  # mojibake, as the real descriptions have it
    ],
    ids=["upper case", "html", "entities", "whitespace", "mojibake"],
)
def test_formatting_noise_does_not_change_the_answer(model: ProductClassifier, noisy) -> None:
    clean = [(t, d) for t, d, _ in PRODUCTS]
    assert np.allclose(
        model.text_proba(_frame([noisy(t, d) for t, d in clean])), model.text_proba(_frame(clean))
    )


@pytest.mark.parametrize(
    ("words", "code"),
    [("croquettes pour chien", 2220), ("lampe de chevet", 2060), ("puzzle 1000 pièces", 1281)],
)
def test_clear_category_words_raise_that_class(model: ProductClassifier, words: str, code: int) -> None:
    neutral = "Article d'occasion en bon état, envoi soigné"  # leans to used books (10) on its own
    before, after = model.text_proba(_frame([(neutral, ""), (f"{neutral} {words}", "")]))
    col = int(np.flatnonzero(model.classes == code)[0])
    assert after[col] > before[col]
    assert (after > after[col]).sum() < (before > before[col]).sum()  # fewer classes ranked above it


# --- the suite can fail -------------------------------------------------------------------------------
def _with_shuffled_labels(model: ProductClassifier) -> ProductClassifier:
    """The same model with every class's weights moved to another class: what training on
    systematically mislabelled data gives."""
    broken = copy.deepcopy(model)
    svm = broken.text.pipeline.named_steps["svm"]
    svm.coef_ = np.roll(svm.coef_, 1, axis=0)
    svm.intercept_ = np.roll(svm.intercept_, 1)
    return broken


def test_a_model_with_shuffled_labels_fails_the_suite(model: ProductClassifier) -> None:
    broken = _with_shuffled_labels(model)
    report = run_behaviour(broken)
    by_name = {s.name: s for s in report.suites}
    assert report.pass_rate < MIN_RATE
    assert by_name["minimum functionality"].passed <= 2
    assert by_name["minimum functionality"].failures  # says which products went wrong
    assert by_name["direction"].pass_rate < 1.0
    assert run_behaviour(model).pass_rate >= MIN_RATE  # the original was not changed by the copy
    # ... and the promotion gate refuses it on that ground alone.
    decision = decide(Candidate(0.99, [], report.pass_rate), None, Params().promotion)
    assert not decision.promote
    assert any("behavioural checks" in reason for reason in decision.reasons)


def test_a_model_that_ignores_its_input_fails_the_suite(model: ProductClassifier) -> None:
    broken = copy.deepcopy(model)
    svm = broken.text.pipeline.named_steps["svm"]
    svm.coef_ = np.zeros_like(svm.coef_)  # the same answer (the largest intercept) for every product
    report = run_behaviour(broken)
    assert report.pass_rate < MIN_RATE
    assert {s.name for s in report.suites if s.pass_rate < MIN_RATE} >= {"minimum functionality", "direction"}
