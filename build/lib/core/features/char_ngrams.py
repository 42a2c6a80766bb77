"""Character n-gram TF-IDF that counts each distinct word once: `CharNgramVectorizer`.

scikit-learn's `analyzer="char_wb"` builds every n-gram of every word occurrence and looks each one up in
a Python loop — the slowest part of fitting the text model on 85,000 products and of answering a request.
Those n-grams never cross a word boundary ("word" padded with one space each side), so a document's
counts are the sum of its words' counts. Here each distinct word is analysed once — remembered for the
rest of a fit and, once the vocabulary is fixed, across calls — and a chunk of documents' count matrix is
assembled by numpy. Everything else — vocabulary sorting, `min_df` / `max_features` pruning, idf weighting,
normalisation — is scikit-learn's own code: the subclass replaces only the counting, and gives the same
vocabulary and the same matrices as `TfidfVectorizer(analyzer="char_wb")` (a test holds them equal).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from itertools import islice
from typing import Any, Final

import numpy as np
from scipy import sparse
from sklearn.feature_extraction import text as sk_text
from sklearn.feature_extraction.text import TfidfVectorizer

CHUNK: Final = 4_096  # documents counted together (bounds the memory of one chunk's n-gram list)
MAX_KNOWN: Final = 500_000  # distinct words remembered before starting over (bounds the memory)


class CharNgramVectorizer(TfidfVectorizer):
    """`TfidfVectorizer` whose `char_wb` counting works word by word (other analyzers: unchanged)."""

    def _count_vocab(self, raw_documents: Iterable[Any], fixed_vocab: bool) -> tuple[dict[str, int], Any]:
        if self.analyzer != "char_wb":
            return super()._count_vocab(raw_documents, fixed_vocab)
        vocabulary: dict[str, int]
        if fixed_vocab:
            vocabulary = self.vocabulary_
            known = self._known_words(vocabulary)
        else:
            vocabulary = defaultdict()
            vocabulary.default_factory = vocabulary.__len__
            known = {}
        prepare = self.build_preprocessor()
        documents = iter(raw_documents)
        parts: list[sparse.csr_array] = []
        while chunk := list(islice(documents, CHUNK)):
            words = [prepare(self.decode(doc)).split() for doc in chunk]
            parts.append(self._count_chunk(words, vocabulary, known, fixed_vocab))
        if not fixed_vocab:
            vocabulary = dict(vocabulary)
            if not vocabulary:
                raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        return vocabulary, sk_text._align_api_if_sparse(_stack(parts, len(vocabulary), self.dtype))

    def _count_chunk(
        self,
        documents: list[list[str]],
        vocabulary: dict[str, int],
        known: dict[str, np.ndarray],
        fixed: bool,
    ) -> sparse.csr_array:
        """Counts of one chunk's documents (given as their words) over the vocabulary so far."""
        index: dict[str, int] = {}
        word_ids = [index.setdefault(word, len(index)) for words in documents for word in words]
        grams = []
        for word in index:
            ids = known.get(word)
            if ids is None:
                ngrams = _word_ngrams(word, *self.ngram_range)
                if fixed:
                    ids = np.array([vocabulary[g] for g in ngrams if g in vocabulary], dtype=np.int64)
                else:  # a new n-gram gets the next id, kept for the rest of the fit
                    ids = np.array([vocabulary[g] for g in ngrams], dtype=np.int64)
                if len(known) >= MAX_KNOWN:
                    known.clear()
                known[word] = ids
            grams.append(ids)
        lengths = np.array([len(ids) for ids in grams], dtype=np.int64)
        flat = np.concatenate(grams) if grams else np.zeros(0, dtype=np.int64)
        starts = np.cumsum(lengths) - lengths
        occurrences = np.asarray(word_ids, dtype=np.int64)
        per_word = lengths[occurrences]
        # the n-gram ids of every word occurrence, in order: word k's ids are flat[starts[k]:starts[k]+len]
        offsets = np.repeat(starts[occurrences] - (np.cumsum(per_word) - per_word), per_word)
        columns = flat[offsets + np.arange(per_word.sum())]
        words_per_doc = np.fromiter((len(words) for words in documents), dtype=np.int64, count=len(documents))
        word_end = np.concatenate([[0], np.cumsum(per_word)])  # n-grams before word occurrence k
        indptr = word_end[np.concatenate([[0], np.cumsum(words_per_doc)])]
        counts = sparse.csr_array(
            (np.ones(len(columns), dtype=np.float64), columns, indptr),
            shape=(len(documents), len(vocabulary)),
        )
        counts.sum_duplicates()
        return counts

    def _known_words(self, vocabulary: dict[str, int]) -> dict[str, np.ndarray]:
        """The remembered n-gram ids of words seen since this vocabulary was fitted."""
        cache = self.__dict__.get("_known")
        if cache is None or cache[0] is not vocabulary:
            cache = self.__dict__["_known"] = (vocabulary, {})
        return cache[1]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_known", None)  # a cache: not part of the fitted model
        return state


def _word_ngrams(word: str, min_n: int, max_n: int) -> list[str]:
    """The `char_wb` n-grams of one word, exactly as scikit-learn's analyzer lists them (padded with a
    space each side; a word shorter than n counted once, whole)."""
    padded = f" {word} "
    size = len(padded)
    out: list[str] = []
    for n in range(min_n, max_n + 1):
        out.extend(padded[i : i + n] for i in range(max(1, size - n + 1)))
        if size <= n:
            break
    return out


def _stack(parts: list[sparse.csr_array], n_features: int, dtype: Any) -> sparse.csr_array:
    """One CSR matrix of the chunks' counts (the later chunks may know more features)."""
    if not parts:
        return sparse.csr_array((0, n_features), dtype=dtype)
    nnz = sum(part.nnz for part in parts)
    index = np.int64 if nnz > np.iinfo(np.int32).max else np.int32
    data = np.concatenate([part.data for part in parts]).astype(dtype, copy=False)
    indices = np.concatenate([part.indices for part in parts]).astype(index, copy=False)
    ends = np.cumsum([part.nnz for part in parts])
    indptr = np.concatenate(
        [[0]] + [part.indptr[1:] + (end - part.nnz) for part, end in zip(parts, ends, strict=True)]
    ).astype(index, copy=False)
    rows = int(sum(part.shape[0] for part in parts))
    return sparse.csr_array((data, indices, indptr), shape=(rows, n_features))
