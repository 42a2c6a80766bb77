"""Suspicious training labels: confident learning on out-of-fold probabilities, and near-duplicate
products that carry different labels.

Confident learning (`cleanlab.filter.find_label_issues`) compares each row's given label with what the
model, never trained on that row, thinks of it — per-class thresholds, so a rare class is not flagged just
for being rare. The probabilities are the stacked model's out-of-fold ones that training saved
(`out_of_fold.npz`): every labelled row outside the hold-out, none seen by the model that scored it.
"""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from cleanlab.filter import find_label_issues as cleanlab_find

from core.config import Settings
from core.data.ingest import load_table
from core.errors import DataNotFoundError
from core.io import atomic_path, load_model
from core.models.train import FILES, classifier_file
from core.progress import StageProgress, silent

log = logging.getLogger(__name__)

LABEL_ISSUE: Final = "label_issue"
DUPLICATE: Final = "duplicate"
COLUMNS: Final = (
    "id",
    "reason",  # label_issue | duplicate
    "label",  # the given (downloaded) label
    "suggested",  # the out-of-fold model's answer
    "self_confidence",  # the model's probability of the given label (low: suspicious)
    "suggested_proba",
    "group",  # duplicates: one number per group of identical products
    "group_labels",  # duplicates: the labels the group carries, e.g. "10,2705"
    "rank",  # review order: 0 first
)
_KEY_CHARS: Final = 300


@dataclass(frozen=True)
class ScanResult:
    issues: pd.DataFrame  # `COLUMNS`, in review order
    meta: dict[str, Any] = field(default_factory=dict)


def find_label_issues(
    ids: np.ndarray, labels: np.ndarray, classes: np.ndarray, proba: np.ndarray, *, n_jobs: int = 1
) -> pd.DataFrame:
    """Rows whose label confident learning doubts, most suspicious first (lowest self-confidence)."""
    y = np.searchsorted(classes, labels)
    if len(y) == 0:
        return pd.DataFrame(columns=list(COLUMNS))
    proba = np.clip(np.asarray(proba, dtype=np.float64), 1e-12, None)
    proba /= proba.sum(axis=1, keepdims=True)
    ranked = cleanlab_find(
        labels=y,
        pred_probs=proba,
        filter_by="prune_by_noise_rate",
        return_indices_ranked_by="self_confidence",
        n_jobs=n_jobs,
    )
    ranked = np.asarray(ranked, dtype=np.int64)
    best = proba[ranked].argmax(axis=1)
    return pd.DataFrame(
        {
            "id": np.asarray(ids)[ranked].astype(np.int64),
            "reason": LABEL_ISSUE,
            "label": np.asarray(labels)[ranked].astype(np.int64),
            "suggested": classes[best].astype(np.int64),
            "self_confidence": proba[ranked, y[ranked]],
            "suggested_proba": proba[ranked, best],
        }
    )


def self_confidence(labels: np.ndarray, classes: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Each row's probability of its own label (cleanlab's self-confidence score)."""
    return np.asarray(proba)[np.arange(len(labels)), np.searchsorted(classes, labels)]


def duplicate_conflicts(train: pd.DataFrame) -> pd.DataFrame:
    """Products identical after normalising title and description (case, accents, punctuation, HTML)
    whose labels differ: every member of each such group, grouped."""
    key = normalised_key(train["designation"], train["description"])
    labels = train["prdtypecode"].astype("int64")
    distinct = labels.groupby(key).transform("nunique")
    clash = train.loc[distinct > 1, ["id", "prdtypecode"]].assign(key=key[distinct > 1])
    if clash.empty:
        return pd.DataFrame(columns=["id", "reason", "label", "group", "group_labels"])
    group = clash.groupby("key", sort=False).ngroup()
    group_labels = clash.groupby("key")["prdtypecode"].transform(
        lambda s: ",".join(str(c) for c in sorted(set(s.astype(int))))
    )
    return pd.DataFrame(
        {
            "id": clash["id"].astype("int64").to_numpy(),
            "reason": DUPLICATE,
            "label": clash["prdtypecode"].astype("int64").to_numpy(),
            "group": group.to_numpy(),
            "group_labels": group_labels.to_numpy(),
        }
    )


def normalised_key(titles: pd.Series, descriptions: pd.Series) -> pd.Series:
    """What two listings of the same product share: lower case, no accents, no markup, no punctuation."""
    raw = titles.fillna("").astype(str) + " | " + descriptions.fillna("").astype(str).str.slice(0, _KEY_CHARS)
    return raw.map(_normalise)


_TAGS = re.compile(r"<[^>]*>|&[#\w]+;")
_NON_WORD = re.compile(r"[\W_]+")


def _normalise(text: str) -> str:
    text = _TAGS.sub(" ", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NON_WORD.sub(" ", text.lower()).strip()


def combine(
    issues: pd.DataFrame,
    duplicates: pd.DataFrame,
    oof: pd.DataFrame,
) -> pd.DataFrame:
    """One review list: label issues and duplicate groups, most suspicious first. `oof` (index id:
    `suggested`, `self_confidence`, `suggested_proba`) fills in the model's view of duplicates; a
    group is ranked by its least convincing member and kept together."""
    if not duplicates.empty:
        duplicates = duplicates.join(oof, on="id")
        duplicates["self_confidence"] = duplicates["self_confidence"].fillna(0.5)  # hold-out rows
        duplicates = duplicates[~duplicates["id"].isin(issues["id"])]
        weakest = duplicates.groupby("group")["self_confidence"].transform("min")
        duplicates = duplicates.assign(_order=weakest).sort_values(["_order", "group", "self_confidence"])
    ordered = issues.assign(_order=issues["self_confidence"])
    out = pd.concat([ordered, duplicates], ignore_index=True) if not duplicates.empty else ordered
    out = out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    out["rank"] = np.arange(len(out))
    for column in COLUMNS:
        if column not in out:
            out[column] = pd.NA
    out["group"] = out["group"].astype("Int64")
    out["suggested"] = out["suggested"].astype("Int64")
    return out.loc[:, list(COLUMNS)]


# --- the edge: files in, file out ------------------------------------------------------------------
def scan(settings: Settings, *, workers: int = 1, progress: StageProgress | None = None) -> ScanResult:
    """Scan the ingested training data with the last trained model's out-of-fold probabilities and
    save the result (`settings.label_issues_file`)."""
    step: StageProgress = progress or silent
    start = time.perf_counter()
    step("read", 0, 1)
    path = settings.candidate_dir / FILES["oof"]
    if not path.is_file():
        raise DataNotFoundError(
            f"No out-of-fold probabilities at {path}: "
            "train a model first (`python -m core train`, or Retrain)."
        )
    oof = np.load(path, allow_pickle=False)
    classifier = load_model(classifier_file(settings.candidate_dir))
    views = [k.removeprefix("proba_") for k in oof.files if k.startswith("proba_")]
    probas = {v: oof[f"proba_{v}"].astype(np.float64) for v in views}
    available = {v: oof[f"available_{v}"] for v in views}
    fused = classifier.fusion.predict_proba(probas, available)
    ids, labels, classes = oof["ids"], oof["labels"], oof["classes"]
    train = load_table(settings.interim_dir)
    step("read", 1, 1)

    step("confident learning", 0, 1)
    issues = find_label_issues(ids, labels, classes, fused, n_jobs=max(1, workers))
    step("confident learning", 1, 1)
    step("near-duplicates", 0, 1)
    duplicates = duplicate_conflicts(train)
    step("near-duplicates", 1, 1)
    best = fused.argmax(axis=1)
    model_view = pd.DataFrame(
        {
            "suggested": classes[best].astype(np.int64),
            "self_confidence": self_confidence(labels, classes, fused),
            "suggested_proba": fused[np.arange(len(best)), best],
        },
        index=pd.Index(ids.astype(np.int64), name="id"),
    )
    result = combine(issues, duplicates, model_view)
    meta = {
        "scanned_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_trained_at": classifier.info.get("trained_at"),
        "rows_scanned": len(ids),
        "label_issues": len(issues),
        "duplicate_rows": len(duplicates),
        "duplicate_groups": int(duplicates["group"].nunique()) if len(duplicates) else 0,
        "seconds": round(time.perf_counter() - start, 2),
    }
    save_scan(ScanResult(result, meta), settings.label_issues_file)
    log.info("label-issue scan: %(label_issues)s issues, %(duplicate_rows)s duplicate rows", meta)
    return ScanResult(result, meta)


def save_scan(result: ScanResult, path: Path) -> None:
    """The scan as Parquet, its summary in the file's metadata; written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(result.issues, preserve_index=False)
    metadata = {**(arrow.schema.metadata or {}), b"scan": json.dumps(result.meta).encode()}
    with atomic_path(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(metadata), tmp)


def load_scan(path: Path) -> ScanResult | None:
    """The last scan saved at `path`, or None before the first one."""
    if not path.is_file():
        return None
    arrow = pq.read_table(path)
    meta = json.loads((arrow.schema.metadata or {}).get(b"scan", b"{}"))
    return ScanResult(arrow.to_pandas(), meta)
