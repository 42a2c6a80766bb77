"""Reviewed labels over the download: the corrections file applied to the ingested training table.

The raw files are never edited. A correction of a training row replaces its label (or sets the row aside,
to the quarantine, when the reviewer marked it unclear); a corrected production product becomes a new
labelled row. A correction that no longer fits the download (its row is gone, or its label changed since
the review) is a conflict: reported, not applied. Pure: tables in, tables and a summary out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd

from core.data.challenge import ID

LABELLED_BY: Final = "labelled_by"  # download | reviewer (relabelled or confirmed) | production (added)
EXCLUDED_REASON: Final = "review_excluded"


@dataclass(frozen=True)
class Overlay:
    train: pd.DataFrame  # the training table with the corrections applied (and the added rows)
    excluded: pd.DataFrame  # training rows a reviewer set aside, for the quarantine
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # corrections not applied, and why
    summary: dict[str, Any] = field(default_factory=dict)


def apply_corrections(
    train: pd.DataFrame,
    corrections: pd.DataFrame,
    *,
    corrections_dir: Path,
    first_new_id: int,
    sha256: str = "",
) -> Overlay:
    """`train` (ingested, with image columns) with `corrections` (a checked corrections file) applied.

    Added production rows get ids from `first_new_id` on (after every downloaded id), in correction
    order, and their photo from `corrections_dir` (the export copies it there)."""
    out = train.copy()
    out[LABELLED_BY] = pd.array(["download"] * len(out), dtype="string")
    position = pd.Series(range(len(out)), index=out[ID].to_numpy())
    counts = {"relabelled": 0, "confirmed": 0, "excluded": 0, "added": 0, "unclear_production": 0}
    conflicts: list[dict[str, Any]] = []
    drop: list[int] = []
    added: list[dict[str, Any]] = []
    label_at, by_at = out.columns.get_loc("prdtypecode"), out.columns.get_loc(LABELLED_BY)
    for record in corrections.to_dict("records"):
        row: dict[str, Any] = {str(k): v for k, v in record.items()}
        if row["source"] == "production":
            if row["verdict"] == "unclear":
                counts["unclear_production"] += 1
            else:
                added.append(row)
            continue
        row_id = int(row["row_id"])
        if row_id not in position.index:
            conflicts.append(_conflict(row, f"row {row_id} is not in the ingested training table"))
            continue
        at = int(position[row_id])
        current = int(out["prdtypecode"].to_numpy()[at])
        if pd.notna(row["old_code"]) and int(row["old_code"]) != current:
            conflicts.append(
                _conflict(row, f"the download now labels row {row_id} {current}, not {int(row['old_code'])}")
            )
            continue
        if row["verdict"] == "unclear":
            drop.append(at)
            counts["excluded"] += 1
        else:
            out.iat[at, label_at] = int(row["new_code"])  # type: ignore[index]
            out.iat[at, by_at] = "reviewer"  # type: ignore[index]
            counts["relabelled" if row["verdict"] == "relabel" else "confirmed"] += 1
    excluded = out.iloc[drop].drop(columns=[LABELLED_BY]).assign(reasons=EXCLUDED_REASON)
    out = out.drop(index=out.index[drop])
    if added:
        new = _production_rows(added, out, corrections_dir, first_new_id)
        out = pd.concat([out, new], ignore_index=True)
        counts["added"] = len(new)
    summary = {
        "file_sha256": sha256,
        "corrections": len(corrections),
        **counts,
        "conflicts": len(conflicts),
    }
    return Overlay(out.reset_index(drop=True), excluded.reset_index(drop=True), conflicts, summary)


def _production_rows(
    rows: list[dict[str, Any]], train: pd.DataFrame, corrections_dir: Path, first_new_id: int
) -> pd.DataFrame:
    records = []
    for i, row in enumerate(rows):
        image = str(row["image_file"] or "")
        records.append(
            {
                ID: first_new_id + i,
                "split": "train",
                "designation": str(row["designation"] or ""),
                "description": str(row["description"] or ""),
                "productid": int(row["productid"]) if pd.notna(row["productid"]) else _product_id(row),
                "imageid": int(row["imageid"]) if pd.notna(row["imageid"]) else 0,
                "prdtypecode": int(row["new_code"]),
                "image_path": str(corrections_dir / image) if image else "",
                "image_status": "ok" if image and (corrections_dir / image).is_file() else "none",
                LABELLED_BY: "production",
            }
        )
    new = pd.DataFrame.from_records(records)
    new["has_image"] = new["image_status"].eq("ok")
    for column in train.columns:
        if column in new:
            new[column] = new[column].astype(train[column].dtype)
    return new.loc[:, [c for c in train.columns if c in new.columns]]


def _product_id(row: dict[str, Any]) -> int:
    """A stable product id for a served product (the hold-out split hashes it): from its key."""
    return int(hashlib.sha256(str(row["product_key"]).encode()).hexdigest()[:12], 16)


def _conflict(row: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"correction_id": row.get("correction_id"), "product_key": row["product_key"], "reason": reason}
