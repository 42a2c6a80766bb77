"""The batch CSV an upload or a request body carries: the challenge's X files as users download them, or any
CSV with a `designation` column — rows to classify, with clear errors for what cannot be read."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd

from core.errors import DataFormatError


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: str | int | None
    designation: str
    description: str


def parse_batch_csv(data: bytes) -> list[BatchRow]:
    """Rows of an uploaded CSV: a `designation` column (required), `description` (optional), ids
    from an `id` column or the unnamed first column of the challenge's X files. Raises
    `DataFormatError` with what is wrong (encoding, quoting, missing column)."""
    if not data.strip():
        raise DataFormatError("The CSV file is empty.", problem="empty_csv")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"The CSV is not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8.",
            problem="encoding",
        ) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(f"The CSV cannot be parsed: {exc}", problem="malformed_csv") from exc
    if "designation" not in frame.columns:
        found = ", ".join(repr(c) for c in frame.columns[:10]) or "none"
        raise DataFormatError(
            f"The CSV needs a 'designation' column (the product title); columns found: {found}.",
            problem="missing_column",
        )
    first = str(frame.columns[0])
    if "id" in frame.columns:
        ids: list[str | int | None] = frame["id"].tolist()
    elif first == "" or first.startswith("Unnamed: 0"):
        ids = frame[first].tolist()
    else:
        ids = list(range(len(frame)))
    descriptions = frame["description"].tolist() if "description" in frame else [""] * len(frame)
    return [
        BatchRow(i, d, e) for i, d, e in zip(ids, frame["designation"].tolist(), descriptions, strict=True)
    ]
