"""Is a photo like the training photos? A nearest-neighbour test in the image encoder's feature space.

Temperature scaling calibrates the image view on photos like its training photos only: a photo unlike
every one of them (a lifestyle shot when it learnt packshots, a natural photo when it learnt drawings) can
still get 98 %. So before the image view counts, the photo's distance to its `k`-th nearest training
photo is compared with the same distance of every training photo to the others (each left out of its own
neighbours). A photo farther away than a share `quantile` of the training photos are is unfamiliar: its
view abstains. A new photo drawn like the training ones is, by exchangeability, as likely as any training
photo to be that far, so a familiar photo is set aside with probability about `1 − quantile` — a
conformal test, with no labels and no out-of-distribution examples needed.

Features are compared as deep features are for this test (Sun et al., "Out-of-distribution detection with
deep nearest neighbors", ICML 2022): by direction, after L2 normalisation — here after a signed square
root too (power normalisation), which compares histogram features such as the colour/edge encoder's by
Hellinger distance: on the demo's drawings against natural scenes it let fewer scenes through than plain
normalised features at the same rate of familiar photos set aside, and it changes little for the
pretrained encoder, which separates them either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from core.params import NoveltyParams


@dataclass
class NoveltyGuard:
    """A fitted test of photos against a sample of the training photos' features."""

    neighbours: NearestNeighbors
    k: int
    quantile: float
    threshold: float
    reference: int

    @classmethod
    def fit(cls, features: np.ndarray, params: NoveltyParams, *, seed: int = 0) -> NoveltyGuard | None:
        """The test for photos like `features` (the training photos' encoder features), None when there
        are too few photos to estimate the `quantile` (fewer than `k + 2`)."""
        n = len(features)
        if n < params.k + 2:
            return None
        keep = (
            np.random.default_rng(seed).permutation(n)[: params.max_reference]
            if n > params.max_reference
            else None
        )
        sample = _embed(features if keep is None else features[np.sort(keep)])
        k = min(params.k, len(sample) - 1)
        neighbours = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(sample)
        # Each reference photo's own first neighbour is itself: its k-th other one is column k.
        left_out = neighbours.kneighbors(sample, return_distance=True)[0][:, k]
        threshold = float(np.quantile(left_out, params.quantile, method="higher"))
        return cls(neighbours, k, params.quantile, threshold, len(sample))

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Each photo's distance to its `k`-th nearest reference photo (0 … 2)."""
        if len(features) == 0:
            return np.zeros(0)
        query = _embed(features)
        return self.neighbours.kneighbors(query, n_neighbors=self.k, return_distance=True)[0][:, -1]

    def unfamiliar(self, distance: np.ndarray) -> np.ndarray:
        """Which of these distances put a photo outside the training photos."""
        return np.asarray(distance) > self.threshold

    def describe(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "quantile": self.quantile,
            "threshold": round(self.threshold, 6),
            "reference_photos": self.reference,
        }


def _embed(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    return np.asarray(normalize(np.sign(x) * np.sqrt(np.abs(x))), dtype=np.float32)
