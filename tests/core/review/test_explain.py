"""The 'why' of a text answer is exact: each n-gram's contribution is coefficient × TF-IDF value, and all
of them plus the intercept give the model's score."""

import numpy as np
import pandas as pd

from core.features.text import model_columns
from core.models.text import TextModel
from core.params import TextParams
from core.review.explain import explain_text


def _model() -> TextModel:
    titles = ["peluche lapin doux", "peluche ours doux", "manette ps4 sans fil", "roman poche"] * 5
    text = pd.DataFrame(model_columns(titles, [""] * len(titles)))
    labels = np.array([1280, 1280, 40, 10] * 5)
    return TextModel(TextParams(word_min_df=1, char_min_df=1)).fit(text, labels)


def test_contributions_are_exact_and_name_their_ngrams() -> None:
    model = _model()
    why = explain_text(model, "Peluche lapin", "", 1280, k=10_000)
    assert why and all(c.weight > 0 for c in why)
    assert [c.weight for c in why] == sorted((c.weight for c in why), reverse=True)
    assert ("title word", "peluche") in {(c.kind, c.ngram) for c in why}
    # every contribution (positive or not) plus the intercept is the class's score
    row = model.transform(model_columns(["Peluche lapin"], [""]))
    svm = model.pipeline.named_steps["svm"]
    at = list(model.classes_).index(1280)
    total = float((row.data * svm.coef_[at][row.indices]).sum() + svm.intercept_[at])
    assert np.isclose(total, model.decision_function(model_columns(["Peluche lapin"], [""]))[0, at])
    assert explain_text(model, "Peluche lapin", "", 40, k=3) != why[:3]
    assert explain_text(model, "Peluche lapin", "", 9999) == []
