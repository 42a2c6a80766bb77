"""Sentence-embedding view: multilingual-e5-small passage embeddings → multinomial logistic regression.

The same recipe as the image view (`core.models.image`): standardized features, a logistic regression
whose C is searched by cross-validated log loss, a temperature fitted on out-of-fold probabilities. It reads
what TF-IDF cannot — synonyms, other languages, word order — and the stacked fusion weighs the two.
"""

from __future__ import annotations

from core.models.image import ImageModel
from core.params import EmbeddingParams


class EmbeddingModel(ImageModel):
    """Fitted sentence-embedding classifier over a fixed class list (the text model's); `params` says
    which encoder and how many tokens it reads, so answering a new product embeds it the same way."""

    params: EmbeddingParams

    @property
    def encoder(self) -> str:
        return self.params.encoder

    @property
    def max_tokens(self) -> int:
        return self.params.max_tokens
