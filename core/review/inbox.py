"""The review loop's edge: queues read from the inference log, the scan and the ingested table;
decisions written to the corrections store; the store exported to the file ingestion applies.

Used alike by the console's Review page and `python -m core review …`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.config import Settings
from core.data.ingest import load_table
from core.errors import DataNotFoundError
from core.review.label_issues import load_scan
from core.review.queues import Window, production_queue, training_queue
from core.storage.corrections import Correction, CorrectionsStore
from core.storage.corrections_file import (
    corrections_from_file,
    read_corrections_file,
    to_file_frame,
    write_corrections_file,
)
from core.storage.drift_reports import list_reports
from core.storage.inference_log import read_inference_log

IMAGES = "images"  # the corrections folder's photos of served products


def open_store(settings: Settings) -> CorrectionsStore:
    """The corrections table, in the inference log's database."""
    return CorrectionsStore.open(str(settings.inference_log_url))


def drifted_windows(settings: Settings) -> list[Window]:
    """The windows of served predictions whose drift report found drift."""
    out = []
    for summary in list_reports(settings):
        if summary.drift_detected and summary.window_start and summary.window_end:
            out.append(Window(pd.Timestamp(summary.window_start), pd.Timestamp(summary.window_end)))
    return out


def production_items(settings: Settings, store: CorrectionsStore, *, limit: int = 1_000) -> pd.DataFrame:
    """The production queue: recent served predictions worth a look, not yet reviewed."""
    log = read_inference_log(settings, last=50_000)
    return production_queue(
        log,
        store.reviewed_keys(),
        confidence=settings.review_confidence,
        drifted=drifted_windows(settings),
        inputs_dir=settings.review_inputs_dir,
        limit=limit,
    )


def training_items(settings: Settings, store: CorrectionsStore, *, limit: int = 5_000) -> pd.DataFrame:
    """The training-data queue from the last label-issue scan (empty before the first scan)."""
    scanned = load_scan(settings.label_issues_file)
    if scanned is None:
        return training_queue(pd.DataFrame(), pd.DataFrame(), set())
    try:
        train = load_table(settings.interim_dir)
    except DataNotFoundError:
        return training_queue(pd.DataFrame(), pd.DataFrame(), set())
    return training_queue(scanned.issues, train, store.reviewed_keys(), limit=limit)


def decide(item: dict[str, Any], new_code: int | None, reviewer: str, note: str | None = None) -> Correction:
    """The correction a reviewer's decision on a queue item makes (`new_code` None: not a product /
    unclear)."""
    note = note or None
    if item["source"] == "training":
        return Correction.for_training(
            int(item["row_id"]),
            int(item["current"]),
            new_code,
            reviewer,
            queue=str(item["queue"]),
            note=note,
            productid=_int(item.get("productid")),
            imageid=_int(item.get("imageid")),
            designation=item.get("designation") or None,
        )
    image_path = str(item.get("image_path") or "")
    return Correction.for_prediction(
        str(item["request_id"]),
        int(item["item"]),
        _int(item.get("current")),
        new_code,
        reviewer,
        str(item["queue"]),
        note=note,
        model_version=_int(item.get("model_version")),
        designation=item.get("designation") or None,
        description=item.get("description") or None,
        image_file=Path(image_path).name if image_path else None,
    )


@dataclass(frozen=True)
class Exported:
    path: Path
    rows: int
    photos: int
    photos_missing: int


def export(settings: Settings, store: CorrectionsStore) -> Exported:
    """Write the active corrections to `settings.corrections_file` (atomically), with the photos of
    corrected served products copied beside it; the file is what the next ingest applies."""
    frame = to_file_frame(store.table())
    folder = settings.corrections_dir / IMAGES
    folder.mkdir(parents=True, exist_ok=True)
    kept, missing = set(), 0
    files = []
    for source, name in zip(frame["source"], frame["image_file"], strict=True):
        if source != "production" or not isinstance(name, str) or not name:
            files.append(name if isinstance(name, str) else "")
            continue
        original = settings.review_inputs_dir / Path(name).name
        target = folder / original.name
        if not target.is_file():
            if not original.is_file():
                missing += 1
                files.append("")
                continue
            shutil.copy2(original, target.with_suffix(".part"))
            target.with_suffix(".part").replace(target)
        kept.add(target.name)
        files.append(f"{IMAGES}/{target.name}")
    frame["image_file"] = files
    path = write_corrections_file(frame, settings.corrections_file)
    for stale in folder.iterdir():
        if stale.is_file() and stale.name not in kept:
            stale.unlink()
    return Exported(path, len(frame), len(kept), missing)


def import_file(store: CorrectionsStore, path: Path) -> int:
    """Add the corrections of a corrections file to the store: all of them, or none (on any bad row,
    duplicate or conflict). Returns how many were added."""
    frame = read_corrections_file(path)
    return len(store.add_many(corrections_from_file(frame)))


def since(store: CorrectionsStore, trained_at: str | datetime | None) -> int:
    """Corrections made after a model's training (all of them when that time is unknown)."""
    when = pd.Timestamp(trained_at).to_pydatetime() if trained_at else None
    return store.count_since(when)


def _int(value: Any) -> int | None:
    return None if value is None or value is pd.NA or pd.isna(value) else int(value)
