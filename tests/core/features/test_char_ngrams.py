"""The word-by-word char_wb counting gives scikit-learn's vocabulary and matrices, exactly."""

import pickle

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from core.features import char_ngrams
from core.features.char_ngrams import CharNgramVectorizer, _word_ngrams

DOCS = [
    "lot de 3 bougies parfumées  vanille",
    "",
    "a",
    "   ",
    "Jeu PS4 — édition collector, neuf sous blister",
    "ab abc abcd abcde abcdef a b",
    "piscine hors-sol tubulaire 3,00 x 0,76 m\tbâche\nincluse",
    "lot de 3 bougies",
    "日本語 テキスト mixed ünïcödé",
]


def _both(**params: object) -> tuple[TfidfVectorizer, CharNgramVectorizer]:
    settings = {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True, "dtype": np.float32}
    settings |= params
    return TfidfVectorizer(**settings), CharNgramVectorizer(**settings)


def _same(a: sparse.spmatrix, b: sparse.spmatrix) -> None:
    assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
    assert (abs(a - b) > 1e-7).nnz == 0


@pytest.mark.parametrize("ngrams", [(2, 5), (1, 3), (3, 3)])
def test_word_ngrams_are_the_analyzers(ngrams: tuple[int, int]) -> None:
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=ngrams).build_analyzer()
    for doc in DOCS:
        ours = [g for word in doc.lower().split() for g in _word_ngrams(word, *ngrams)]
        assert ours == reference(doc)


@pytest.mark.parametrize("params", [{}, {"min_df": 2}, {"max_features": 40}, {"lowercase": False}])
def test_fit_and_transform_match_scikit_learn(params: dict[str, object]) -> None:
    rng = np.random.default_rng(3)
    words = ["bougie", "lot", "PS4", "é", "tubulaire", "x", "3,00", "collector", "neuf", "ab"]
    docs = DOCS + [" ".join(rng.choice(words, size=rng.integers(0, 12))) for _ in range(300)]
    reference, ours = _both(**params)
    _same(reference.fit_transform(docs), ours.fit_transform(docs))
    assert ours.vocabulary_ == reference.vocabulary_
    assert np.array_equal(ours.idf_, reference.idf_)
    unseen = ["bougies neuves 3,00", "zzz", "", "Lot LOT lot", *docs[:50]]
    for _ in range(2):  # the second time from the remembered words
        _same(reference.transform(unseen), ours.transform(unseen))


def test_chunks_and_the_word_memory_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = [f"produit {i % 7} modèle {i} couleur rouge" for i in range(50)]
    reference, ours = _both()
    monkeypatch.setattr(char_ngrams, "CHUNK", 8)
    monkeypatch.setattr(char_ngrams, "MAX_KNOWN", 5)
    _same(reference.fit_transform(docs), ours.fit_transform(docs))
    _same(reference.transform(docs[::-1]), ours.transform(docs[::-1]))
    assert CountVectorizer.transform(ours, []).shape == (0, len(reference.vocabulary_))


def test_the_memory_is_not_pickled_and_a_refit_forgets_it() -> None:
    ours = CharNgramVectorizer(analyzer="char_wb", ngram_range=(2, 3)).fit(["abc def", "abc"])
    ours.transform(["abc xyz"])
    assert "_known" not in pickle.loads(pickle.dumps(ours)).__dict__
    ours.fit(["xyz"])
    assert ours.transform(["abc xyz"]).nnz == len(ours.vocabulary_)


def test_an_empty_vocabulary_is_refused_like_scikit_learn() -> None:
    with pytest.raises(ValueError, match="empty vocabulary"):
        CharNgramVectorizer(analyzer="char_wb").fit(["", "  "])


def test_other_analyzers_are_scikit_learns() -> None:
    reference = TfidfVectorizer(analyzer="char", ngram_range=(2, 3)).fit(DOCS)
    ours = CharNgramVectorizer(analyzer="char", ngram_range=(2, 3)).fit(DOCS)
    assert ours.vocabulary_ == reference.vocabulary_
