"""Pure views of an ingested table for exploration: summary, class distribution, filtering, samples."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from core.categories import CATEGORIES, label

ImageFilter = Literal["all", "with image", "without image"]


@dataclass(frozen=True)
class DatasetSummary:
    rows: int
    classes: int
    empty_descriptions: int
    missing_images: int

    @property
    def empty_description_rate(self) -> float:
        return self.empty_descriptions / self.rows if self.rows else 0.0


def add_search_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Columns the explorer needs, computed once per table: class label, lengths, a lower-case haystack."""
    out = df.copy()
    desc = out["description"].fillna("")
    out["description_length"] = desc.str.len().astype("int64")
    out["empty_description"] = desc.str.strip().eq("")
    if "prdtypecode" in out:
        out["category"] = out["prdtypecode"].map(label).astype("string")
    out["_haystack"] = (out["designation"].fillna("") + " " + desc).str.lower()
    return out


def summarize(df: pd.DataFrame) -> DatasetSummary:
    desc = df["description"].fillna("").str.strip()
    return DatasetSummary(
        rows=len(df),
        classes=int(df["prdtypecode"].nunique()) if "prdtypecode" in df else 0,
        empty_descriptions=int(desc.eq("").sum()),
        missing_images=int((~df["has_image"]).sum()) if "has_image" in df else 0,
    )


def class_distribution(df: pd.DataFrame) -> pd.DataFrame:
    """One row per known class (also those with no rows): code, label, names, count, share, real share."""
    counts = df["prdtypecode"].value_counts()
    rows = [
        {
            "code": c.code,
            "category": c.label,
            "name_fr": c.name_fr,
            "count": int(counts.get(c.code, 0)),
            "real_share": c.share,
        }
        for c in CATEGORIES
    ]
    out = pd.DataFrame(rows)
    out["share"] = out["count"] / max(len(df), 1)
    return out.sort_values("count", ascending=False, ignore_index=True)


def filter_products(
    df: pd.DataFrame,
    *,
    query: str = "",
    codes: Collection[int] = (),
    images: ImageFilter = "all",
    empty_description: bool | None = None,
) -> pd.DataFrame:
    """Rows matching every given filter. `query` matches title or description, case-insensitive,
    every word must appear. Needs the columns of `add_search_columns`."""
    mask = pd.Series(True, index=df.index)
    for word in query.lower().split():
        mask &= df["_haystack"].str.contains(word, regex=False)
    if codes:
        mask &= df["prdtypecode"].isin(list(codes))
    if images != "all":
        mask &= df["has_image"] if images == "with image" else ~df["has_image"]
    if empty_description is not None:
        mask &= df["empty_description"] == empty_description
    return df.loc[mask]


def sample_class(df: pd.DataFrame, code: int, n: int, seed: int = 0, with_image: bool = True) -> pd.DataFrame:
    """Up to `n` random products of one class (with an image, for the gallery)."""
    rows = df[df["prdtypecode"] == code]
    if with_image:
        rows = rows[rows["has_image"]]
    return rows.sample(n=min(n, len(rows)), random_state=seed) if len(rows) else rows
