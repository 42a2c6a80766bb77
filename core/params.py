"""Pipeline hyperparameters: `params.yaml` at the project root, validated into typed sections.

DVC reads the same file (`params:` in dvc.yaml), so `dvc exp run -S text.C=1.0` and
`python -m core pipeline` train the same model. A bad value fails early with the key and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from core.errors import RakutenError

PARAMS_FILE: Final = "params.yaml"


class ParamsError(RakutenError):
    """params.yaml is missing, unreadable or holds an invalid value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitParams(_Section):
    holdout: float = Field(default=0.1, gt=0, lt=0.5, description="Share of products held out (by id hash).")
    salt: str = Field(
        default="rakuten-holdout-1", min_length=1, description="Changing it re-draws the hold-out."
    )
    folds: int = Field(default=3, ge=2, le=20, description="Cross-fitting folds of the training rows.")


def _positive(value: float | list[float]) -> float | list[float]:
    values = value if isinstance(value, list) else [value]
    if not values or any(v <= 0 for v in values):
        raise ValueError("must be a number > 0, or a list of numbers > 0 to search by cross-validation")
    return value


# A regularisation is one value, or candidates searched by cross-validation (`core.models.search`).
Regularisation = Annotated[float | list[float], AfterValidator(_positive)]


class TextParams(_Section):
    word_ngram_max: int = Field(default=2, ge=1, le=3)
    word_min_df: int = Field(default=2, ge=1)
    word_max_features: int | None = Field(default=300_000, ge=1000)
    char_ngram_min: int = Field(default=2, ge=1)
    char_ngram_max: int = Field(default=5, ge=1, le=8)
    char_min_df: int = Field(default=2, ge=1)
    char_max_features: int | None = Field(default=300_000, ge=1000)
    title_features: bool = True
    C: Regularisation = Field(default_factory=lambda: [0.25, 0.5, 1.0])

    @property
    def svm_C(self) -> float:
        """The C an SVM is built with: the value given, or the middle candidate before a search."""
        return _middle(self.C)


class NoveltyParams(_Section):
    """The photo guard (`core.models.novelty`): when a photo is too unlike the training photos to count."""

    enabled: bool = True
    quantile: float = Field(
        default=0.99,
        gt=0.5,
        lt=1,
        description="A photo farther from the training photos than this share of them is set aside "
        "(about 1 − quantile of familiar photos are).",
    )
    k: int = Field(default=3, ge=1, le=50, description="Which nearest training photo's distance is compared.")
    max_reference: int = Field(
        default=2000,
        ge=50,
        description="Training photos kept in the model to compare with (a random sample).",
    )


class ImageParams(_Section):
    encoder: str = "colour_edge"  # params.yaml says `auto`: the pretrained encoder when it is installed
    C: Regularisation = Field(default_factory=lambda: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5])
    max_iter: int = Field(default=500, ge=10)
    min_rows: int = Field(default=100, ge=0)
    novelty: NoveltyParams = NoveltyParams()

    @property
    def lr_C(self) -> float:
        return _middle(self.C)


class EmbeddingParams(_Section):
    encoder: str = Field(default="none", description="none, or e5_small (needs the embeddings extra).")
    max_tokens: int = Field(
        default=128, ge=8, le=512, description="Tokens of each passage the encoder reads."
    )
    C: Regularisation = Field(default_factory=lambda: [0.01, 0.05, 0.2, 1.0])
    max_iter: int = Field(default=500, ge=10)

    @property
    def enabled(self) -> bool:
        return self.encoder != "none"

    @property
    def lr_C(self) -> float:
        return _middle(self.C)


class FusionParams(_Section):
    C: Regularisation = Field(default_factory=lambda: [0.01, 0.1, 1.0])
    min_rows: int = Field(default=100, ge=10)


def _middle(value: float | list[float]) -> float:
    values = sorted(value) if isinstance(value, list) else [value]
    return float(values[len(values) // 2])


class EvaluateParams(_Section):
    top_k: list[int] = Field(default_factory=lambda: [3, 5])


class PromotionParams(_Section):
    margin: float = Field(default=0.002, ge=0)
    min_weighted_f1: float = Field(default=0.5, ge=0, le=1)
    max_zero_f1_classes: int = Field(default=0, ge=0)
    zero_f1_min_support: int = Field(default=5, ge=1)
    min_behaviour_pass_rate: float = Field(default=0.9, ge=0, le=1)


class Params(_Section):
    seed: int = 42
    split: SplitParams = SplitParams()
    text: TextParams = TextParams()
    image: ImageParams = ImageParams()
    embedding: EmbeddingParams = EmbeddingParams()
    fusion: FusionParams = FusionParams()
    evaluate: EvaluateParams = EvaluateParams()
    promotion: PromotionParams = PromotionParams()

    def flat(self) -> dict[str, Any]:
        """`{"text.C": 0.5, ...}` — the form MLflow params and DVC keys use."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, inner in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, inner)
            else:
                out[prefix] = value

        walk("", self.model_dump())
        return out


def with_overrides(params: Params, overrides: Mapping[str, Any]) -> Params:
    """`params` with dotted keys replaced, as `dvc exp run -S text.C=1.0` does: `{"text.C": 1.0}`.
    Unknown keys and invalid values raise `ParamsError` naming them."""
    data = params.model_dump()
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ParamsError(f"Unknown parameter {key!r}: no section {part!r}.")
            node = node[part]
        if leaf not in node:
            raise ParamsError(f"Unknown parameter {key!r}; known: {', '.join(sorted(params.flat()))}.")
        node[leaf] = value
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ParamsError(f"Invalid parameter override: {details}") from exc


def load_params(path: Path) -> Params:
    """Read and validate `params.yaml`; a missing file gives the defaults written in this module."""
    if not path.is_file():
        return Params()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"Cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections (seed, split, text, …).")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ParamsError(f"Invalid value in {path}: {details}") from exc
