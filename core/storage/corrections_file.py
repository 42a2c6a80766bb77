"""The corrections file (`data/corrections/labels.csv`): what the store exports, what ingestion applies
over the raw labels and what `python -m core review import` reads — checked row by row, used whole or
not at all."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict
from pathlib import Path, PureWindowsPath
from typing import Any, Final

import pandas as pd

from core.errors import DataFormatError
from core.io import atomic_path
from core.storage.corrections import FIELDS, Correction, CorrectionError, refuse_repeats

FILE_COLUMNS: Final = (
    "correction_id",
    "created_at",
    "product_key",
    "source",
    "queue",
    "verdict",
    "old_code",
    "new_code",
    "reviewer",
    "note",
    "row_id",
    "request_id",
    "item",
    "model_version",
    "productid",
    "imageid",
    "designation",
    "description",
    "image_file",
)
# Columns naming a file relative to the corrections folder: the ingest joins them to it to read the photo
# (`core.data.overlay`), so a path that is absolute or climbs out would read any file on the machine.
PATH_COLUMNS: Final = ("image_file",)
_INTEGERS: Final = (
    "correction_id",
    "old_code",
    "new_code",
    "row_id",
    "item",
    "model_version",
    "productid",
    "imageid",
)


def to_file_frame(active: pd.DataFrame) -> pd.DataFrame:
    """The file's rows from the store's active corrections (`CorrectionsStore.table()`)."""
    out = active.rename(columns={"id": "correction_id"}).copy()
    out["created_at"] = pd.to_datetime(out["created_at"], utc=True).map(
        lambda t: t.isoformat(timespec="seconds")
    )
    for column in _INTEGERS:
        out[column] = out[column].astype("Int64")
    return out.loc[:, list(FILE_COLUMNS)].sort_values("correction_id").reset_index(drop=True)


def write_corrections_file(frame: pd.DataFrame, path: Path) -> Path:
    """Write the file atomically (a reader sees the old file or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.loc[:, list(FILE_COLUMNS)].to_csv(
            tmp, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n"
        )
    return path


def read_corrections_file(path: Path) -> pd.DataFrame:
    """The file's corrections, checked row by row; `DataFormatError` naming every bad line (up to 10)
    when any row is unusable — a file is applied whole or not at all."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{path} is not UTF-8 text: save it as UTF-8.", problem="encoding", path=str(path)
        ) from exc
    if not text.strip():
        return pd.DataFrame(columns=list(FILE_COLUMNS))
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(
            f"{path} cannot be parsed as CSV: {exc}", problem="malformed_csv", path=str(path)
        ) from exc
    missing = [c for c in ("product_key", "source", "verdict", "new_code") if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{path} lacks the column(s) {', '.join(missing)}: "
            "export it with `python -m core review export`.",
            problem="missing_column",
            path=str(path),
        )
    for column in FILE_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    bad: list[str] = []
    parsed: list[Correction] = []
    for line, row in enumerate(frame.to_dict("records"), start=2):
        try:
            for column in PATH_COLUMNS:
                _inside_folder(column, row[column])
            parsed.append(_from_row({str(k): v for k, v in row.items()}).checked())
        except (CorrectionError, ValueError) as exc:
            bad.append(f"line {line}: {exc}")
    if not bad:
        try:
            refuse_repeats(parsed)
        except CorrectionError as exc:
            bad.append(str(exc))
    if bad:
        shown = "; ".join(bad[:10]) + (f"; … {len(bad) - 10} more" if len(bad) > 10 else "")
        raise DataFormatError(
            f"{path}: {len(bad)} unusable row(s), so none was applied — {shown}",
            problem="bad_corrections",
            path=str(path),
        )
    out = frame.loc[:, list(FILE_COLUMNS)].copy()
    for column in _INTEGERS:
        out[column] = pd.array([_int(v) for v in out[column]], dtype="Int64")
    return out


def corrections_from_file(frame: pd.DataFrame, *, queue: str | None = None) -> list[Correction]:
    """The file's rows as corrections to import (their queue replaced by `queue` when given)."""
    out = []
    for row in frame.to_dict("records"):
        c = _from_row({str(k): ("" if v is None or v is pd.NA else v) for k, v in row.items()})
        out.append(c if queue is None else Correction(**{**asdict(c), "queue": queue}))
    return out


def _inside_folder(column: str, value: str) -> None:
    """Refuse (`ValueError`) a path that joined to a folder could leave it: absolute (`/x`, `\\x`), with a
    drive or share (`C:x`, `//host/share`), or with a `..` part. Read as Windows reads it (either separator,
    drives; a part of dots and spaces is `..` there), the strictest of the two: a file may come from anywhere.
    "" (no file) passes."""
    if not value:
        return
    path = PureWindowsPath(value)
    if "\0" in value or path.drive or path.root or any(not part.strip(". ") for part in path.parts):
        raise ValueError(
            f"{column} {value!r} is not a path inside the corrections folder (like images/photo.jpg): "
            "absolute paths, drive letters and '..' are refused"
        )


def _from_row(row: dict[str, Any]) -> Correction:
    values: dict[str, Any] = {}
    for name in FIELDS:
        raw = row.get(name, "")
        if name in _INTEGERS:
            try:
                values[name] = _int(raw)
            except ValueError:
                raise ValueError(f"{name} {raw!r} is not an integer") from None
        else:
            text = "" if raw is None else str(raw)
            values[name] = (
                text if text or name in ("product_key", "reviewer", "source", "verdict", "queue") else None
            )
    values["queue"] = values["queue"] or "import"
    return Correction(**values)


def _int(value: Any) -> int | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        number = float(text)  # "12.0", as spreadsheets write integers
    if not number.is_integer():
        raise ValueError(f"{text!r} is not an integer")
    return int(number)
