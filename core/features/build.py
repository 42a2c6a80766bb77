"""The features step: ingested tables → model-ready text, image and sentence-embedding features.

Text is cleaned once here (cached by DVC as a stage output); image features and text embeddings go through
content-addressed caches, so a retrain or a new split never re-encodes a picture or a text it has seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from core.data.ingest import load_table
from core.errors import DataNotFoundError
from core.features.cache import ImageFeatureCache
from core.features.image import get_encoder, resolve_encoder
from core.features.sentence import NONE, TextEmbeddingCache, get_text_encoder
from core.features.text import model_text
from core.io import atomic_path, write_text
from core.progress import StageProgress, silent

if TYPE_CHECKING:
    from distributed import Client

FILES: Final = {
    "products": "products.parquet",
    "images": "image_features.npy",
    "embeddings": "text_embeddings.npy",
    "meta": "meta.json",
}


@dataclass(frozen=True)
class FeatureSet:
    """One row per product (index `id`): `split` (train/test), `productid`, `prdtypecode` (train only),
    `title`, `text`, `passage`, `has_image`, `image_path`; `image_features`, aligned with those rows (zeros
    where there is no image); and `embeddings` of each row's passage by the text encoder `embedder` (None
    when no text encoder was asked for)."""

    products: pd.DataFrame
    image_features: np.ndarray
    encoder: str
    embeddings: np.ndarray | None = None
    embedder: str = NONE
    max_tokens: int = 0  # tokens of each passage the embedder read

    def _select(self, at: np.ndarray) -> FeatureSet:
        embeddings = None if self.embeddings is None else self.embeddings[at]
        return FeatureSet(
            self.products.iloc[at],
            self.image_features[at],
            self.encoder,
            embeddings,
            self.embedder,
            self.max_tokens,
        )

    def part(self, split: str) -> FeatureSet:
        return self._select(np.flatnonzero((self.products["split"] == split).to_numpy()))

    def rows(self, ids: pd.Index | np.ndarray) -> FeatureSet:
        at = self.products.index.get_indexer(pd.Index(ids))
        if (at < 0).any():
            raise KeyError(f"{int((at < 0).sum())} product ids are not in the feature set")
        return self._select(at)

    @property
    def labels(self) -> np.ndarray:
        return self.products["prdtypecode"].to_numpy(dtype=np.int64)

    @property
    def has_image(self) -> np.ndarray:
        return self.products["has_image"].to_numpy(dtype=bool)

    def save(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        out = {name: folder / file for name, file in FILES.items()}
        with atomic_path(out["products"]) as tmp:
            self.products.to_parquet(tmp)
        with atomic_path(out["images"]) as tmp, tmp.open("wb") as fh:
            np.save(fh, self.image_features)
        if self.embeddings is not None:
            with atomic_path(out["embeddings"]) as tmp, tmp.open("wb") as fh:
                np.save(fh, self.embeddings)
        else:
            out["embeddings"].unlink(missing_ok=True)
            del out["embeddings"]
        meta = {
            "encoder": self.encoder,
            "embedder": self.embedder,
            "max_tokens": self.max_tokens,
            "rows": len(self.products),
            "images": int(self.has_image.sum()),
        }
        write_text(out["meta"], json.dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, folder: Path) -> FeatureSet:
        if not (folder / FILES["meta"]).is_file():
            raise DataNotFoundError(f"No features at {folder}: run `python -m core features` first.")
        meta = json.loads((folder / FILES["meta"]).read_text(encoding="utf-8"))
        products = pd.read_parquet(folder / FILES["products"])
        embedder = meta.get("embedder", NONE)
        embeddings = np.load(folder / FILES["embeddings"]) if embedder != NONE else None
        images = np.load(folder / FILES["images"])
        return cls(products, images, meta["encoder"], embeddings, embedder, int(meta.get("max_tokens", 0)))


def build_features(
    interim_dir: Path,
    image_cache: Path,
    embedding_cache: Path,
    *,
    encoder: str = "colour_edge",
    embedder: str = NONE,
    max_tokens: int = 128,
    workers: int = 1,
    progress: StageProgress | None = None,
    client: Client | None = None,
) -> FeatureSet:
    """Clean the text of both splits, encode every readable image (cached by content) with the encoder
    named `encoder` (`auto`: the pretrained one when the vision extra is installed) and, unless `embedder`
    is "none", embed every product's passage with that text encoder (cached by content too). With a Dask
    `client`, what is not cached yet is encoded and embedded on its workers."""
    step: StageProgress = progress or silent
    # A missing extra fails here, before minutes of image encoding.
    text_encoder = None if embedder == NONE else get_text_encoder(embedder, max_tokens)
    tables = [load_table(interim_dir, "train")]
    if (interim_dir / "test.parquet").is_file():
        tables.append(load_table(interim_dir, "test"))
    raw = pd.concat(tables, ignore_index=True).set_index("id")
    if "prdtypecode" not in raw:
        raw["prdtypecode"] = pd.NA
    step("clean text", 0, len(raw))
    text = model_text(raw, workers=workers)
    step("clean text", len(raw), len(raw))

    usable = raw["has_image"].to_numpy(dtype=bool) & (raw["image_status"] != "corrupt").to_numpy()
    encoder = resolve_encoder(encoder)
    image_encoder = get_encoder(encoder)
    matrix = np.zeros((len(raw), image_encoder.n_features), dtype=np.float32)
    cache = ImageFeatureCache(image_cache, image_encoder)
    if usable.any():
        paths = raw.loc[usable, "image_path"].astype(str).tolist()
        encoded, ok = cache.features(paths, workers=workers, progress=progress, client=client)
        matrix[usable] = encoded
        usable[usable] = ok
    products = pd.DataFrame(
        {
            "split": raw["split"].astype(str),
            "productid": raw["productid"].astype("int64"),
            "prdtypecode": raw["prdtypecode"].astype("Int64"),
            "title": text["title"],
            "text": text["text"],
            "passage": text["passage"],
            "has_image": usable,
            "image_path": raw["image_path"].astype("string"),
        },
        index=raw.index,
    )
    embeddings = None
    if text_encoder is not None:
        store = TextEmbeddingCache(embedding_cache, text_encoder)
        embeddings = store.features(text["passage"].tolist(), progress=progress, client=client)
    return FeatureSet(
        products, matrix, encoder, embeddings, embedder, max_tokens if embeddings is not None else 0
    )
