"""The review queues: which products a reviewer sees, in which order. Pure functions on tables.

- Production: photos unlike the model's training photos (the photo view abstained: label them so the next
  model knows such photos), served answers below the confidence threshold, answers whose text and photo
  views disagree, and answers served in a window whose inputs drifted — ordered so that every predicted class
  gets its turn (round robin, least confident first within a class): a common class cannot drown the rare.
- Training data: the label-issue scan's rows (`core.review.label_issues`), most suspicious first.
Products with an active correction have left the queues.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from core.storage.corrections import prediction_key, training_key

UNFAMILIAR_PHOTO: Final = "unfamiliar_photo"
LOW_CONFIDENCE: Final = "low_confidence"
VIEWS_DISAGREE: Final = "views_disagree"
DRIFT: Final = "drift"
ITEM_COLUMNS: Final = (
    "key",
    "source",  # training | production
    "queue",  # label_issue | duplicate | unfamiliar_photo | low_confidence | views_disagree | drift
    "designation",
    "description",
    "image_path",  # the photo to show ("" when none)
    "current",  # the training label, or the served answer
    "suggested",  # the out-of-fold model's answer (training)
    "confidence",  # self-confidence of the label (training), the served answer's probability (production)
    "detail",  # one line saying why the item is here
    "row_id",
    "request_id",
    "item",
    "model_version",
    "productid",
    "imageid",
    "text_code",
    "image_code",
)


@dataclass(frozen=True)
class Window:
    """A drift report's window of served predictions, and whether its inputs drifted."""

    start: pd.Timestamp
    end: pd.Timestamp


def production_queue(
    log: pd.DataFrame,
    reviewed: set[str],
    *,
    confidence: float,
    drifted: Sequence[Window] = (),
    inputs_dir: Path | None = None,
    limit: int = 1_000,
) -> pd.DataFrame:
    """Served predictions worth a look (`ITEM_COLUMNS`), in review order."""
    if log.empty:
        return _empty()
    frame = log.copy()
    text_code = _column(frame, "text_code")
    image_code = _column(frame, "image_code")
    low = frame["confidence"] < confidence
    unfamiliar = _column(frame, "photo_unfamiliar").fillna(False).astype(bool)
    disagree = text_code.notna() & image_code.notna() & (text_code != image_code)
    in_drift = pd.Series(False, index=frame.index)
    for window in drifted:
        in_drift |= frame["ts"].between(window.start, window.end)
    queue = np.select(
        [unfamiliar, disagree, low, in_drift],
        [UNFAMILIAR_PHOTO, VIEWS_DISAGREE, LOW_CONFIDENCE, DRIFT],
        default="",
    )
    frame = frame.assign(queue=queue, text_code=text_code, image_code=image_code)
    frame = frame[frame["queue"] != ""]
    keys = [prediction_key(r, i) for r, i in zip(frame["request_id"], frame["item"], strict=True)]
    frame = frame.assign(key=keys)
    frame = frame[~frame["key"].isin(reviewed)].drop_duplicates("key", keep="last")
    if frame.empty:
        return _empty()
    frame = round_robin(frame, by="predicted_code", order="confidence").head(limit)
    image_file = _column(frame, "image_file", "")
    description = _column(frame, "description", "")
    out = pd.DataFrame(
        {
            "key": frame["key"],
            "source": "production",
            "queue": frame["queue"],
            "designation": frame["designation"].fillna(""),
            "description": description.fillna(""),
            "image_path": [
                str(inputs_dir / f) if inputs_dir is not None and isinstance(f, str) and f else ""
                for f in image_file
            ],
            "current": frame["predicted_code"].astype("Int64"),
            "suggested": pd.array([pd.NA] * len(frame), dtype="Int64"),
            "confidence": frame["confidence"].astype(float),
            "detail": [_why_served(r) for r in frame.to_dict("records")],
            "row_id": pd.array([pd.NA] * len(frame), dtype="Int64"),
            "request_id": frame["request_id"],
            "item": frame["item"].astype("Int64"),
            "model_version": frame["model_version"].astype("Int64"),
            "productid": pd.array([pd.NA] * len(frame), dtype="Int64"),
            "imageid": pd.array([pd.NA] * len(frame), dtype="Int64"),
            "text_code": frame["text_code"].astype("Int64"),
            "image_code": frame["image_code"].astype("Int64"),
        }
    )
    return out.reset_index(drop=True)


def training_queue(
    issues: pd.DataFrame, train: pd.DataFrame, reviewed: set[str], *, limit: int = 5_000
) -> pd.DataFrame:
    """The scan's rows (`core.review.label_issues.COLUMNS`) joined to their products, in scan order."""
    if issues.empty:
        return _empty()
    keys = issues["id"].map(lambda i: training_key(int(i)))
    issues = issues.assign(key=keys)
    issues = issues[~issues["key"].isin(reviewed)].sort_values("rank").head(limit)
    products = train.set_index("id")
    issues = issues[issues["id"].isin(products.index)]  # rows gone since the scan
    if issues.empty:
        return _empty()
    rows = products.loc[issues["id"].to_numpy()]
    has_image = rows["has_image"].to_numpy() if "has_image" in rows else np.zeros(len(rows), dtype=bool)
    out = pd.DataFrame(
        {
            "key": issues["key"].to_numpy(),
            "source": "training",
            "queue": issues["reason"].to_numpy(),
            "designation": rows["designation"].fillna("").to_numpy(),
            "description": rows["description"].fillna("").to_numpy(),
            "image_path": np.where(has_image, rows["image_path"].fillna("").to_numpy(), ""),
            "current": rows["prdtypecode"].astype("Int64").to_numpy(),
            "suggested": issues["suggested"].astype("Int64").to_numpy(),
            "confidence": issues["self_confidence"].astype(float).to_numpy(),
            "detail": [_why_training(r) for r in issues.to_dict("records")],
            "row_id": issues["id"].astype("Int64").to_numpy(),
            "request_id": None,
            "item": pd.array([pd.NA] * len(issues), dtype="Int64"),
            "model_version": pd.array([pd.NA] * len(issues), dtype="Int64"),
            "productid": rows["productid"].astype("Int64").to_numpy(),
            "imageid": rows["imageid"].astype("Int64").to_numpy(),
            "text_code": pd.array([pd.NA] * len(issues), dtype="Int64"),
            "image_code": pd.array([pd.NA] * len(issues), dtype="Int64"),
        }
    )
    return out.reset_index(drop=True)


def round_robin(frame: pd.DataFrame, *, by: str, order: str) -> pd.DataFrame:
    """Rows ordered class by class in turns: each class's least `order` first, then each one's second…"""
    ranked = frame.sort_values(order, kind="stable")
    turn = ranked.groupby(by, sort=False).cumcount()
    return (
        ranked.assign(_turn=turn.to_numpy())
        .sort_values(["_turn", order], kind="stable")
        .drop(columns="_turn")
    )


def _why_served(row: dict[Hashable, Any]) -> str:
    # the numbers are the serving model's, which may be an older version than today's champion
    queue, confidence = row["queue"], float(row["confidence"])
    version = row.get("model_version")
    by = f"v{int(version)}" if version is not None and pd.notna(version) else "the served model"
    if queue == UNFAMILIAR_PHOTO:
        if pd.isna(row["text_code"]):
            return f"the photo is unlike {by}'s training photos and came without a title: a guess"
        return (
            f"the photo is unlike {by}'s training photos, so {by} answered from the text "
            f"({_pct(confidence)} sure); its photo view alone says {_code(row['image_code'])}"
        )
    if queue == VIEWS_DISAGREE:
        return (
            f"when served by {by}: text says {int(row['text_code'])}, photo says {int(row['image_code'])} "
            f"(answer {_pct(confidence)} sure)"
        )
    if queue == LOW_CONFIDENCE:
        return f"{by} answered only {_pct(confidence)} sure"
    return f"served in a drifted window ({by} answered {_pct(confidence)} sure)"


def _code(value: Any) -> str:
    return str(int(value)) if value is not None and pd.notna(value) else "nothing"


def _why_training(row: dict[Hashable, Any]) -> str:
    score = row["self_confidence"]
    # the scan's numbers come from the cross-validated model that never saw the row, not the champion
    sure = (
        f"the label scan's out-of-fold model gives the label {_pct(float(score))}"
        if pd.notna(score)
        else "not scored by the label scan (hold-out row)"
    )
    if row["reason"] == "duplicate":
        return f"an identical product is labelled otherwise (labels {row['group_labels']}); {sure}"
    suggested = row["suggested"]
    return f"{sure} and suggests {int(suggested)}" if pd.notna(suggested) else sure


def _pct(p: float) -> str:
    return "< 1%" if p < 0.005 else f"{p:.0%}"


def _column(frame: pd.DataFrame, name: str, default: object = pd.NA) -> pd.Series:
    """A log column that older logs may lack."""
    if name in frame:
        return frame[name]
    return pd.Series([default] * len(frame), index=frame.index, dtype=object)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=list(ITEM_COLUMNS))
