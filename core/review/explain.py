"""Why the text model answered as it did: the n-grams that pushed it toward a class.

Exact for the linear TF-IDF model: a class's score is the sum over features of coefficient × feature
value (plus the intercept), so each n-gram's contribution is that product — no approximation, no sampling.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Final

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from core.features.text import model_columns
from core.models.text import TextModel

_KINDS: Final = {"word": "word", "char": "characters", "title": "title word"}


@dataclass(frozen=True, slots=True)
class Contribution:
    kind: str  # word | characters | title word
    ngram: str
    weight: float  # coefficient × TF-IDF value: what it added to the class's score


def explain_text(
    model: TextModel, designation: str, description: str | None, code: int, *, k: int = 8
) -> list[Contribution]:
    """The `k` n-grams that added most to class `code`'s score for this product (positive only),
    largest first."""
    classes = list(model.classes_)
    if code not in classes:
        return []
    text = model_columns([designation], [description or ""])
    row = model.transform(text)
    svm = model.pipeline.named_steps["svm"]
    at = classes.index(code)
    coef = np.asarray(svm.coef_)
    coef = (coef[0] if at == 1 else -coef[0]) if coef.shape[0] == 1 else coef[at]  # two classes: one row
    weights = row.data * coef[row.indices]
    names = _feature_names(model)
    order = np.argsort(-weights)[:k]
    return [Contribution(*names[int(row.indices[i])], float(weights[i])) for i in order if weights[i] > 0]


_NAMES: weakref.WeakKeyDictionary[TextModel, list[tuple[str, str]]] = weakref.WeakKeyDictionary()


def _feature_names(model: TextModel) -> list[tuple[str, str]]:
    """(kind, n-gram) of every column of `model.transform`, in its order (built once per model)."""
    if model not in _NAMES:
        names: list[tuple[str, str]] = []
        for name, vectorizer, _ in model.pipeline.named_steps["features"].transformers_:
            if not isinstance(vectorizer, TfidfVectorizer):
                continue
            block = [""] * len(vectorizer.vocabulary_)
            for gram, column in vectorizer.vocabulary_.items():
                block[column] = gram
            names += [(_KINDS.get(name, name), gram) for gram in block]
        _NAMES[model] = names
    return _NAMES[model]
