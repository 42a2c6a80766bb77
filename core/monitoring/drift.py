"""Drift: has what the service receives changed since training? An Evidently report over the same
features on both sides, saved as HTML with a JSON summary, and a decision with its reasons.

- **Reference**: held-out training products (the test part of the last training split, never fitted
  on), scored by the champion through the very function the API uses, and described by the function
  that writes the inference log — so both sides are measured the same way. Cached per champion version
  and data version under `reports/evidently/reference/`.
- **Current**: a window of the inference log (the last `monitor_window_hours`, at most
  `monitor_window_rows` rows), sampled down to `drift_max_rows` (the text column is the slow part).
- **Columns**: title (text, with Evidently's length / word-count / non-letter descriptors),
  description length and emptiness, has image, image brightness / saturation / RGB means, predicted
  class and confidence (prediction drift). Image columns are compared only when both sides have images.
- **Decision**: drift when the share of drifted columns reaches `retrain_drifted_share` (Evidently's
  `drift_share`); each column's method, score and threshold are kept in the summary.

Files: `reports/evidently/drift-<UTC time>.html` (self-contained) and `.json` (the summary),
`index.json` (every summary, newest first) and `latest.json` (the newest) — all written atomically
(`core.storage.drift_reports` reads and writes the summaries).
"""
# Size: reference, window, Evidently report, summary and decision: one report's whole life.

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, f1_score

from core.config import Settings
from core.data.ingest import load_report, load_table
from core.errors import RakutenError
from core.io import atomic_path, write_text
from core.models.train import FILES
from core.progress import StageProgress
from core.serving.predictor import ImageLimits, Product, predict
from core.serving.records import records
from core.storage.corrections import CorrectionsStore
from core.storage.drift_reports import ColumnDrift, DriftSummary, add_to_index, script_safe_html
from core.storage.inference_log import read_inference_log
from core.tracking.registry import NoChampionError, open_registry
from core.tracking.store import load_classifier

if TYPE_CHECKING:
    from core.models.classifier import ProductClassifier

NUMERIC: Final = (
    "description_length",
    "image_brightness",
    "image_saturation",
    "image_red",
    "image_green",
    "image_blue",
    "confidence",
)
# `photo`: whether the photo was like the model's training photos (`core.models.novelty`) — a rise of
# unfamiliar photos is drift the image statistics may not show.
CATEGORICAL: Final = ("description_empty", "has_image", "photo", "predicted_code")
DESCRIBED: Final = 2  # the drift table's layout: cached references of another layout are not reused
TEXT: Final = "title"
IMAGE_COLUMNS: Final = tuple(c for c in NUMERIC if c.startswith("image_"))
PREDICTION_COLUMNS: Final = ("predicted_code", "confidence")


logger = logging.getLogger(__name__)


class DriftError(RakutenError):
    """A drift report cannot be made as asked (too few predictions in the window, …)."""


# --- describing products ------------------------------------------------------------------------------
def describe(log: pd.DataFrame) -> pd.DataFrame:
    """Inference-log rows → the drift table (one row per prediction, the columns above)."""
    # A photo sent alone has no title: missing (Evidently's text descriptors skip it), not "" (whose
    # non-letter share divides by zero).
    title = log["designation"].astype("string").str.strip()
    title = title.mask(title == "")
    length = pd.to_numeric(log["description_length"], errors="coerce").fillna(0)
    out = pd.DataFrame(
        {
            TEXT: np.array([t if isinstance(t, str) else None for t in title], dtype=object),
            "description_length": length.to_numpy(dtype="float64"),
            "description_empty": np.where(length.to_numpy() == 0, "empty", "filled"),
            "has_image": np.where(log["has_image"].astype(bool).to_numpy(), "image", "no image"),
            "photo": _photo(log),
            "predicted_code": log["predicted_code"].astype(int).astype(str).to_numpy(),
            "confidence": pd.to_numeric(log["confidence"]).to_numpy(dtype="float64"),
        }
    )
    for column in IMAGE_COLUMNS:
        out[column] = pd.to_numeric(log[column], errors="coerce").to_numpy(dtype="float64")
    return out


def _photo(log: pd.DataFrame) -> np.ndarray:
    has_image = log["has_image"].astype(bool).to_numpy()
    if "photo_unfamiliar" not in log:  # a log from before the photo guard
        return np.where(has_image, "not checked", "no photo")
    unfamiliar = log["photo_unfamiliar"].astype("boolean")
    like = np.where(unfamiliar.fillna(False).to_numpy(dtype=bool), "unlike training", "like training")
    return np.where(~has_image, "no photo", np.where(unfamiliar.notna().to_numpy(), like, "not checked"))


def build_reference(
    settings: Settings,
    classifier: ProductClassifier,
    version: int | None,
    *,
    rows: int,
    seed: int = 0,
    progress: StageProgress | None = None,
) -> pd.DataFrame:
    """Held-out training products scored and described exactly as the service would log them.

    Cached in `reports/evidently/reference/` per (champion version, data version, rows)."""

    report = load_report(settings.interim_dir)
    data_version = report.created_at if report else "unknown"
    key = hashlib.sha256(f"{version}|{data_version}|{rows}|{seed}|{DESCRIBED}".encode()).hexdigest()[:12]
    cached = _reference_dir(settings) / f"reference-v{version}-{key}.parquet"
    if cached.is_file():
        return pd.read_parquet(cached)

    table = load_table(settings.interim_dir, "train").set_index("id")
    held = held_out_ids(settings, table)
    sample = table.loc[held].sample(n=min(rows, len(held)), random_state=seed)
    limits = ImageLimits.of(settings)
    logged: list[Any] = []
    batch = 256
    for start in range(0, len(sample), batch):
        part = sample.iloc[start : start + batch]
        products = [_product(row, Product) for row in part.itertuples()]
        answers = predict(classifier, products, limits, k=1)
        logged += [
            asdict(r) | {"prdtypecode": int(code)}
            for r, code in zip(
                records("reference", version, products, answers, 0.0, "reference"),
                part["prdtypecode"],
                strict=True,
            )
        ]
        if progress:
            progress("reference", min(start + batch, len(sample)), len(sample))
    frame = describe(pd.DataFrame(logged))
    frame["target"] = [str(r["prdtypecode"]) for r in logged]
    with atomic_path(cached) as tmp:
        frame.to_parquet(tmp)
    return frame


def _product(row: Any, product_type: Any) -> Any:
    image = None
    path = getattr(row, "image_path", None)
    if isinstance(path, str) and path:
        try:
            image = Path(path).read_bytes()
        except OSError:
            image = None  # the service would get no image either
    description = row.description if isinstance(row.description, str) else ""
    return product_type(designation=row.designation, description=description, image=image)


def held_out_ids(settings: Settings, table: pd.DataFrame) -> pd.Index:
    """The rows the last training did not fit on (its hold-out); all rows when there is no split."""

    split_file = settings.candidate_dir / FILES["split"]
    if not split_file.is_file():
        return table.index
    part = pd.read_parquet(split_file)["part"]
    held = part.index[part.isin(["holdout", "validation", "test"])].intersection(table.index)
    return held if len(held) else table.index


def _reference_dir(settings: Settings) -> Path:
    return settings.drift_reference_dir


def current_window(settings: Settings, *, now: datetime | None = None) -> tuple[pd.DataFrame, datetime]:
    """The inference log's window (last `monitor_window_hours`, at most `monitor_window_rows`)."""

    since = (now or datetime.now(UTC)) - timedelta(hours=settings.monitor_window_hours)
    return read_inference_log(settings, since=since, last=settings.monitor_window_rows), since


# --- the report ---------------------------------------------------------------------------------------
DESCRIPTORS: Final = ("title_chars", "title_words", "title_non_letter_pct")


def compare(
    reference: pd.DataFrame, current: pd.DataFrame, *, drift_share: float, max_rows: int, seed: int = 0
) -> tuple[Any, list[ColumnDrift], list[str], float]:
    """Run Evidently's drift preset — and its classification preset when both sides carry the true
    class (`target`); (snapshot, per-column results, skipped columns, drifted share)."""
    # Lazy imports: Evidently (~3–12 s to import on 2 cores, quiet to busy) loads here: the window and
    # the hold-out are read without it
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.descriptors import NonLetterCharacterPercentage, TextLength, WordCount
    from evidently.presets import ClassificationPreset, DataDriftPreset

    reference = _sample(reference, max_rows, seed)
    current = _sample(current, max_rows, seed)
    skipped = [c for c in IMAGE_COLUMNS if reference[c].notna().sum() < 2 or current[c].notna().sum() < 2]
    numeric = [c for c in NUMERIC if c not in skipped]
    columns = [TEXT, *numeric, *CATEGORICAL]
    labelled = "target" in current and "target" in reference
    definition = DataDefinition(
        numerical_columns=numeric,
        categorical_columns=list(CATEGORICAL),
        text_columns=[TEXT],
        classification=[MulticlassClassification(target="target", prediction_labels="predicted_code")]
        if labelled
        else None,
    )
    descriptors = [
        TextLength(TEXT, alias=DESCRIPTORS[0]),
        WordCount(TEXT, alias=DESCRIPTORS[1]),
        NonLetterCharacterPercentage(TEXT, alias=DESCRIPTORS[2]),
    ]
    kept = [*columns, "target"] if labelled else columns
    datasets = [
        Dataset.from_pandas(
            frame[kept].reset_index(drop=True), data_definition=definition, descriptors=descriptors
        )
        for frame in (reference, current)
    ]
    metrics: list[Any] = [DataDriftPreset(columns=[*columns, *DESCRIPTORS], drift_share=drift_share)]
    if labelled:
        metrics.append(ClassificationPreset())
    report = Report(metrics, include_tests=True)
    with warnings.catch_warnings():  # the text domain classifier's convergence, empty-bin divisions
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            snapshot = report.run(reference_data=datasets[0], current_data=datasets[1])
        except Exception as exc:  # a library failure on odd data: a clear error, the traceback in the log
            logger.exception("Evidently failed on this window")
            raise DriftError(
                f"Evidently could not compute the report on this window ({type(exc).__name__}: {exc}); "
                "nothing was written. Try another window (--hours / --rows) and report the log's traceback."
            ) from exc
    results, share = _columns(snapshot.dict(), numeric)
    return snapshot, results, [f"{c}: no images on one side" for c in skipped], share


def quality(frame: pd.DataFrame) -> dict[str, float]:
    """Accuracy and weighted F1 (the challenge metric) of labelled predictions."""
    truth, predicted = frame["target"].astype(str), frame["predicted_code"].astype(str)
    return {
        "rows": float(len(frame)),
        "accuracy": float(accuracy_score(truth, predicted)),
        "weighted_f1": float(f1_score(truth, predicted, average="weighted", zero_division=0)),
    }


def reviewed_quality(current: pd.DataFrame, reviewed: pd.Series) -> dict[str, float] | None:
    """Accuracy and weighted F1 of the window's predictions that a reviewer labelled (None: none was).
    Reviewers see the unsure answers first: this is a floor for the window, not its accuracy."""
    keys = current["request_id"].astype(str) + ":" + current["item"].astype(int).astype(str)
    target = keys.map(reviewed)
    labelled = current.assign(target=target).dropna(subset=["target"])
    if labelled.empty:
        return None
    return quality(labelled.assign(target=labelled["target"].astype(int)))


def _columns(data: dict[str, Any], numeric: Sequence[str]) -> tuple[list[ColumnDrift], float]:
    failed = {
        t["metric_config"]["metric_id"]
        for t in data.get("tests", [])
        if str(getattr(t.get("status"), "value", t.get("status"))) == "FAIL"
    }
    out: list[ColumnDrift] = []
    share = 0.0
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif config["type"].endswith("ValueDrift"):
            column = config["column"]
            kind = (
                "text"
                if column == TEXT
                else "numerical"
                if column in numeric
                else "categorical"
                if column in CATEGORICAL
                else "descriptor"
            )
            out.append(
                ColumnDrift(
                    column=column,
                    kind=kind,
                    method=str(config["method"]),
                    score=float(metric["value"]),
                    threshold=float(config["threshold"]),
                    drifted=metric["id"] in failed,
                )
            )
    return out, share


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=rows, random_state=seed) if len(frame) > rows else frame


def run_drift(
    settings: Settings,
    classifier: ProductClassifier,
    version: int | None,
    *,
    current: pd.DataFrame | None = None,
    labels: pd.Series | None = None,
    reviewed: pd.Series | None = None,
    now: datetime | None = None,
    progress: StageProgress | None = None,
) -> DriftSummary:
    """Compare the inference log's window with the reference; write the HTML report, its summary and
    the index. `current` (inference-log rows) replaces the window when given. `labels` (true class by
    request id) restricts the report to the labelled predictions and adds classification quality.
    `reviewed` (true class by prediction key `request_id:item`, from reviewers' corrections) adds the
    accuracy of the window's reviewed predictions, without restricting the report to them."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    window_start: datetime | None = None
    if current is None:
        current, window_start = current_window(settings, now=now)
    if labels is not None:
        current = current.assign(target=current["request_id"].map(labels)).dropna(subset=["target"])
        if current.empty:
            raise DriftError(
                "None of the labelled request ids is in the window: check the labels file and the window "
                "(--hours / --rows)."
            )
    if len(current) < settings.monitor_min_rows:
        raise DriftError(
            f"Only {len(current)} predictions in the last {settings.monitor_window_hours} h (at least "
            f"{settings.monitor_min_rows} are needed, RAKUTEN_MONITOR_MIN_ROWS): send traffic to the API "
            "(`python -m core simulate`) or widen RAKUTEN_MONITOR_WINDOW_HOURS."
        )
    reference = build_reference(
        settings, classifier, version, rows=settings.drift_reference_rows, progress=progress
    )
    if progress:
        progress("drift report", 0, 1)
    described = describe(current)
    if labels is not None:
        described["target"] = current["target"].astype(int).astype(str).to_numpy()
    snapshot, columns, skipped, share = compare(
        reference,
        described,
        drift_share=settings.retrain_drifted_share,
        max_rows=settings.drift_max_rows,
    )
    scores = {"current": quality(described), "reference": quality(reference)} if labels is not None else None
    checked = reviewed_quality(current, reviewed) if reviewed is not None else None
    if checked is not None:
        scores = {**(scores or {}), "reviewed": checked}
    if progress:
        progress("drift report", 1, 1)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    folder = settings.drift_dir
    html = folder / f"drift-{stamp}.html"
    write_text(html, script_safe_html(snapshot.get_html_str(as_iframe=False)))
    times = sorted(pd.to_datetime(current["ts"], utc=True)) if "ts" in current else []
    first = times[0].isoformat() if times else (window_start.isoformat() if window_start else None)
    last = times[-1].isoformat() if times else None
    drifted = sum(c.drifted for c in columns)
    summary = DriftSummary(
        created_at=now.isoformat(timespec="seconds"),
        model_version=version,
        window_hours=settings.monitor_window_hours,
        window_rows=settings.monitor_window_rows,
        window_start=first,
        window_end=last,
        current_rows=len(current),
        reference_rows=len(reference),
        drift_detected=share >= settings.retrain_drifted_share,
        drifted_share=share,
        drifted_columns=drifted,
        columns_compared=len(columns),
        drift_share_threshold=settings.retrain_drifted_share,
        prediction_drift=any(c.drifted for c in columns if c.column in PREDICTION_COLUMNS),
        columns=columns,
        skipped=skipped,
        quality=scores,
        html=html.name,
        seconds=round(time.perf_counter() - started, 2),
    )
    write_text(folder / f"drift-{stamp}.json", json.dumps(summary.to_dict(), indent=2))
    add_to_index(folder, summary)
    return summary


def report_now(
    settings: Settings, *, labels: pd.Series | None = None, progress: StageProgress | None = None
) -> DriftSummary:
    """A drift report for the champion, now (what the CLI, the console and the monitoring flow run).
    `NoChampionError` before the first promoted model."""

    registry = open_registry(settings)
    version = registry.champion()
    if version is None:
        raise NoChampionError("No champion model yet: train one first (`python -m core pipeline`).")
    classifier = load_classifier(settings, version=version)
    reviewed = reviewed_labels(settings)
    return run_drift(settings, classifier, version, labels=labels, reviewed=reviewed, progress=progress)


def reviewed_labels(settings: Settings) -> pd.Series | None:
    """True classes of served predictions from reviewers' corrections (by `request_id:item`)."""
    store = CorrectionsStore.open(str(settings.inference_log_url))
    try:
        table = store.table()
    finally:
        store.close()
    served = table[(table["source"] == "production") & table["new_code"].notna()]
    if served.empty:
        return None
    return pd.Series(served["new_code"].astype(int).to_numpy(), index=served["product_key"].to_numpy())
