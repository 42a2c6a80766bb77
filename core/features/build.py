"""The features step: ingested tables → model-ready text + image features for every product.

Text is cleaned once here (cached by DVC as a stage output); image features go through the
content-addressed cache, so a retrain or a new split never re-encodes a picture it has seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from core.data.ingest import load_table
from core.features.cache import ImageFeatureCache
from core.features.image import get_encoder, resolve_encoder
from core.features.text import model_text
from core.io import atomic_path, write_text
from core.progress import StageProgress, silent

FILES: Final = {"products": "products.parquet", "images": "image_features.npy", "meta": "meta.json"}


@dataclass(frozen=True)
class FeatureSet:
    """One row per product (index `id`): `split` (train/test), `productid`, `prdtypecode` (train only),
    `title`, `text`, `has_image`, `image_path`; and `image_features`, aligned with those rows (zeros where
    there is no image)."""

    products: pd.DataFrame
    image_features: np.ndarray
    encoder: str

    def part(self, split: str) -> FeatureSet:
        mask = (self.products["split"] == split).to_numpy()
        return FeatureSet(self.products[mask], self.image_features[mask], self.encoder)

    def rows(self, ids: pd.Index | np.ndarray) -> FeatureSet:
        at = self.products.index.get_indexer(pd.Index(ids))
        if (at < 0).any():
            raise KeyError(f"{int((at < 0).sum())} product ids are not in the feature set")
        return FeatureSet(self.products.iloc[at], self.image_features[at], self.encoder)

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
        meta = {"encoder": self.encoder, "rows": len(self.products), "images": int(self.has_image.sum())}
        write_text(out["meta"], json.dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, folder: Path) -> FeatureSet:
        from core.errors import DataNotFoundError

        if not (folder / FILES["meta"]).is_file():
            raise DataNotFoundError(f"No features at {folder}: run `python -m core features` first.")
        meta = json.loads((folder / FILES["meta"]).read_text(encoding="utf-8"))
        products = pd.read_parquet(folder / FILES["products"])
        return cls(products, np.load(folder / FILES["images"]), meta["encoder"])


def build_features(
    interim_dir: Path,
    cache_dir: Path,
    *,
    encoder: str = "colour_edge",
    workers: int = 1,
    progress: StageProgress | None = None,
) -> FeatureSet:
    """Clean the text of both splits and encode every readable image (cached by content) with the
    encoder named `encoder` (`auto`: the pretrained one when the vision extra is installed)."""
    step: StageProgress = progress or silent
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
    cache = ImageFeatureCache(cache_dir / "image_features", image_encoder)
    if usable.any():
        paths = raw.loc[usable, "image_path"].astype(str).tolist()
        encoded, ok = cache.features(paths, workers=workers, progress=progress)
        matrix[usable] = encoded
        usable[usable] = ok
    products = pd.DataFrame(
        {
            "split": raw["split"].astype(str),
            "productid": raw["productid"].astype("int64"),
            "prdtypecode": raw["prdtypecode"].astype("Int64"),
            "title": text["title"],
            "text": text["text"],
            "has_image": usable,
            "image_path": raw["image_path"].astype("string"),
        },
        index=raw.index,
    )
    return FeatureSet(products, matrix, encoder)
