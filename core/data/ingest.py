"""The ingest step: challenge files → validated, merged tables in the interim folder + a report.

read (either naming) → row rules → image checks → write, all or nothing. A fatal problem raises before
anything is written, so the previous outputs stay as they were.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pandas as pd

from core.data.challenge import (
    ID,
    X_COLUMNS,
    Y_COLUMNS,
    ChallengeFiles,
    Split,
    file_state,
    fingerprint,
    image_name,
    image_state,
    locate,
    read_table,
)
from core.data.image_files import ImageCheck, check_images
from core.data.overlay import EXCLUDED_REASON, Overlay, apply_corrections
from core.data.validation import Problem, ValidationReport, check_rows, image_problems, problem, sort_problems
from core.errors import DataNotFoundError
from core.progress import StageProgress, silent
from core.storage.corrections_file import read_corrections_file

log = logging.getLogger(__name__)

OUTPUTS: Final[dict[str, str]] = {
    "train": "train.parquet",
    "test": "test.parquet",
    "quarantine": "quarantine.csv",
    "report_json": "validation_report.json",
    "report_md": "validation_report.md",
}


@dataclass(frozen=True)
class IngestResult:
    report: ValidationReport
    outputs: dict[str, Path]
    tables: dict[str, pd.DataFrame]


def ingest(
    data_dir: Path,
    out_dir: Path,
    *,
    image_check: ImageCheck = "decode",
    workers: int = 1,
    corrections: Path | None = None,
    progress: StageProgress | None = None,
) -> IngestResult:
    """Validate the challenge files in `data_dir` and write the merged tables to `out_dir`, with the
    reviewed labels of the `corrections` file (when it exists) applied over the downloaded ones."""
    files = locate(data_dir)
    tables, quarantine, problems, stats = _check_all(files, image_check, workers, corrections, progress)
    report = ValidationReport(
        source_dir=str(files.root),
        naming=files.naming,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        problems=sort_problems(problems),
        stats=stats,
        notes=list(files.notes)
        + ([] if files.x_test else ["no X_test file: only the train split was ingested"]),
    )
    outputs = _write_outputs(out_dir, tables, quarantine, report)
    log.info("ingested %s: %s", files.root, report.status)
    return IngestResult(report, outputs, tables)


def _check_all(
    files: ChallengeFiles,
    image_check: ImageCheck,
    workers: int,
    corrections: Path | None,
    progress: StageProgress | None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, list[Problem], dict]:
    """Read and check both splits. Everything fatal is raised here, before any write."""
    step: StageProgress = progress or silent
    step("read", 0, 1)
    x_train = read_table(files.x_train, X_COLUMNS)
    y_train = read_table(files.y_train, Y_COLUMNS)
    x_test = read_table(files.x_test, X_COLUMNS) if files.x_test else None
    reviewed = corrections if corrections is not None and corrections.is_file() else None
    corrected = read_corrections_file(reviewed) if reviewed else None  # a bad file stops here
    step("read", 1, 1)

    checks = {
        "train": check_rows(
            x_train.frame,
            "train",
            y=y_train.frame,
            x_bad_lines=x_train.bad_lines,
            y_bad_lines=y_train.bad_lines,
        )
    }
    if x_test is not None:
        checks["test"] = check_rows(x_test.frame, "test", x_bad_lines=x_test.bad_lines)

    problems = [p for c in checks.values() for p in c.problems]
    tables: dict[str, pd.DataFrame] = {}
    raw_version = fingerprint(files)
    stats: dict = {
        "fingerprint": raw_version,
        "data_version": raw_version,
        "file_state": file_state(files),
        "image_state": image_state(files),
    }
    set_aside: list[pd.DataFrame] = []
    for split, check in checks.items():
        kept = _attach_images(check.kept, files, split, image_check, workers, step)  # type: ignore[arg-type]
        problems += image_problems(split, kept[ID], kept["image_status"])
        quarantined = check.quarantined
        if split == "train" and corrected is not None and reviewed is not None:
            ids = [x_train.frame, *([x_test.frame] if x_test is not None else [])]
            overlay = _overlay(kept, corrected, reviewed, ids)
            kept, problems = overlay.train, problems + _overlay_problems(overlay)
            set_aside.append(overlay.excluded)
            quarantined = pd.concat([quarantined, overlay.excluded], ignore_index=True)
            stats["corrections"] = {
                "file": str(reviewed),
                **overlay.summary,
                "conflict_list": overlay.conflicts,
            }
            stats["data_version"] = hashlib.sha256(
                f"{raw_version}:{overlay.summary['file_sha256']}".encode()
            ).hexdigest()[:16]
        tables[split] = kept
        stats[split] = _split_stats(kept, quarantined, image_check)
        stats[split]["rows_read"] -= stats.get("corrections", {}).get("added", 0) if split == "train" else 0
    if "test" in tables:
        overlap = set(tables["test"][ID]) & set(tables["train"][ID])
        if overlap:
            problems.append(problem("test_id_overlaps_train", "test", overlap))
    quarantine = pd.concat([c.quarantined for c in checks.values()] + set_aside, ignore_index=True)
    return tables, quarantine, problems, stats


def _overlay(
    kept: pd.DataFrame, corrected: pd.DataFrame, path: Path, id_frames: list[pd.DataFrame]
) -> Overlay:
    ids = pd.concat([pd.to_numeric(f[ID], errors="coerce") for f in id_frames])
    first_new = int(ids.max()) + 1 if ids.notna().any() else 0
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return apply_corrections(kept, corrected, corrections_dir=path.parent, first_new_id=first_new, sha256=sha)


def _overlay_problems(overlay: Overlay) -> list[Problem]:
    out = []
    if not overlay.excluded.empty:
        out.append(problem(EXCLUDED_REASON, "train", overlay.excluded[ID]))
    if overlay.conflicts:
        out.append(
            problem("correction_conflict", "train", [int(c["correction_id"] or 0) for c in overlay.conflicts])
        )
    return out


def _attach_images(
    kept: pd.DataFrame,
    files: ChallengeFiles,
    split: Split,
    image_check: ImageCheck,
    workers: int,
    step: StageProgress,
) -> pd.DataFrame:
    folder = files.image_dirs.get(split) or (files.root / f"images/image_{split}")
    paths = [str(folder / image_name(i, p)) for i, p in zip(kept["imageid"], kept["productid"], strict=True)]
    status = check_images(
        paths, mode=image_check, workers=workers, progress=lambda d, t: step(f"images ({split})", d, t)
    )
    out = kept.copy()
    out.insert(1, "split", split)
    out["image_path"] = pd.array(paths, dtype="string")
    out["image_status"] = pd.array(status, dtype="string")
    out["has_image"] = out["image_status"].isin(["ok", "odd_size", "unchecked"])
    return out


def _split_stats(kept: pd.DataFrame, quarantined: pd.DataFrame, image_check: str) -> dict:
    desc = kept["description"].fillna("").str.strip()
    stats = {
        "rows_read": len(kept) + len(quarantined),
        "rows_kept": len(kept),
        "rows_quarantined": len(quarantined),
        "empty_descriptions": int(desc.eq("").sum()),
        "image_check": image_check,
        "images_missing": int(kept["image_status"].eq("missing").sum()),
        "images_corrupt": int(kept["image_status"].eq("corrupt").sum()),
    }
    if "prdtypecode" in kept:
        stats["classes"] = {
            str(k): int(v) for k, v in kept["prdtypecode"].value_counts().sort_index().items()
        }
    return stats


def _write_outputs(
    out_dir: Path, tables: dict[str, pd.DataFrame], quarantine: pd.DataFrame, report: ValidationReport
) -> dict[str, Path]:
    """Write every output to a staging folder, then move each into place (report last)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ingest-", dir=out_dir))
    try:
        for split, frame in tables.items():
            frame.to_parquet(staging / OUTPUTS[split], index=False)
        quarantine.to_csv(staging / OUTPUTS["quarantine"], index=False)
        (staging / OUTPUTS["report_md"]).write_text(report.to_markdown(), encoding="utf-8")
        (staging / OUTPUTS["report_json"]).write_text(
            json.dumps(report.to_dict(), indent=2), encoding="utf-8"
        )
        if "test" not in tables:
            (out_dir / OUTPUTS["test"]).unlink(missing_ok=True)  # a stale test table would not match
        order = [k for k in OUTPUTS if (staging / OUTPUTS[k]).exists()]
        order.sort(key=lambda k: k == "report_json")
        for key in order:
            (staging / OUTPUTS[key]).replace(out_dir / OUTPUTS[key])
        return {k: out_dir / OUTPUTS[k] for k in order}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_report(out_dir: Path) -> ValidationReport | None:
    """The last validation report written to `out_dir`, or None before the first ingest."""
    path = out_dir / OUTPUTS["report_json"]
    if not path.is_file():
        return None
    return ValidationReport.from_dict(json.loads(path.read_text(encoding="utf-8")))


def load_table(out_dir: Path, split: Split = "train") -> pd.DataFrame:
    """An ingested split; `DataNotFoundError` with the command to run if ingestion has not happened."""
    path = out_dir / OUTPUTS[split]
    if not path.is_file():
        raise DataNotFoundError(f"No ingested {split} table at {path}: run `python -m core ingest` first.")
    return pd.read_parquet(path)
