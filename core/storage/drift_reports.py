"""Drift reports on disk: each report's summary (decision, share, every column's method, score and
threshold), the index of all of them and the newest alone (`latest.json`, what the API exports), and
the labels files that give predictions their true class. Light: no Evidently, no pandas work."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd
from filelock import FileLock

from core.config import Settings
from core.errors import DataFormatError, DataNotFoundError
from core.io import write_text

SUMMARY_VERSION: Final = 1
LATEST: Final = "latest.json"  # the newest summary alone: what the API's /metrics reads


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # numerical | categorical | text | descriptor
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class DriftSummary:
    created_at: str
    model_version: int | None
    window_hours: int
    window_rows: int | None
    window_start: str | None
    window_end: str | None
    current_rows: int
    reference_rows: int
    drift_detected: bool
    drifted_share: float
    drifted_columns: int
    columns_compared: int
    drift_share_threshold: float
    prediction_drift: bool
    columns: list[ColumnDrift] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    quality: dict[str, dict[str, float]] | None = None  # current / reference, when labels were given
    html: str = ""
    seconds: float = 0.0
    version: int = SUMMARY_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftSummary:
        columns = [ColumnDrift(**c) for c in data.get("columns", [])]
        return cls(**{**data, "columns": columns})

    @property
    def reasons(self) -> list[str]:
        drifted = [c.column for c in self.columns if c.drifted]
        verdict = "drift detected" if self.drift_detected else "no drift"
        out = [
            f"{verdict}: {self.drifted_columns} of {self.columns_compared} columns drifted "
            f"({self.drifted_share:.0%}, threshold {self.drift_share_threshold:.0%})"
        ]
        if drifted:
            out.append("drifted: " + ", ".join(drifted))
        if self.prediction_drift:
            out.append("the predictions themselves drifted (class mix or confidence)")
        if self.quality:
            now, before = self.quality["current"], self.quality["reference"]
            out.append(
                f"weighted F1 on {int(now['rows']):,} labelled predictions: {now['weighted_f1']:.3f} "
                f"(reference {before['weighted_f1']:.3f})"
            )
        return out


def add_to_index(folder: Path, summary: DriftSummary) -> None:

    with FileLock(str(folder / ".index.lock"), timeout=30):
        entries = [e for e in _read_index(folder) if e.get("created_at") != summary.created_at]
        entries.insert(0, summary.to_dict())
        write_text(folder / "index.json", json.dumps(entries, indent=2))
        newest = max(entries, key=lambda e: str(e.get("created_at", "")))
        write_text(folder / LATEST, json.dumps(newest, indent=2))


def _read_index(folder: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def list_reports(settings: Settings) -> list[DriftSummary]:
    """Every drift report's summary, newest first (an empty list before the first one)."""
    return [DriftSummary.from_dict(e) for e in _read_index(settings.drift_dir)]


def latest_report(settings: Settings) -> DriftSummary | None:
    reports = list_reports(settings)
    return reports[0] if reports else None


def report_html(settings: Settings, summary: DriftSummary) -> Path:
    path = settings.drift_dir / summary.html
    if not path.is_file():
        raise DataNotFoundError(f"The drift report {path} is missing (deleted?): generate a new one.")
    return path


# Evidently (0.7) writes the report's data as `var … = <json.dumps(...)>;` lines inside a <script> block,
# and json.dumps leaves `<` as it is: a product title holding `</script><script>…` ends the block and runs
# as script in whoever opens the report. json.dumps writes no raw line break (it escapes them), so each
# data line is found whole; its `<`, `>` and `&` are rewritten as JSON's own escapes (\u003c …), which
# parse to the very same strings but can no longer end a script block or open a comment.
_DATA_BLOCK: Final = re.compile(
    r"<script>\n[ \t]*var (?P<id>metric_[0-9a-f]+) = [^\n]*;\n"
    r"[ \t]*var additional_graphs_(?P=id) = [^\n]*;\n</script>"
)
_SCRIPT_SAFE: Final = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_safe_html(html: str) -> str:
    """Evidently's standalone report with its embedded data escaped for a <script> block (see above).
    `DataFormatError` when the report does not have the one data block this layout has: nothing is
    written or shown rather than a report whose data could run as script. Escaping twice changes
    nothing more (reports written before the escaping are escaped as they are read)."""

    def escaped(block: re.Match[str]) -> str:
        lines = block.group(0).split("\n")  # "<script>", the two data lines, "</script>"
        return "\n".join([lines[0], *(line.translate(_SCRIPT_SAFE) for line in lines[1:-1]), lines[-1]])

    safe, found = _DATA_BLOCK.subn(escaped, html)
    if found != 1:
        raise DataFormatError(
            f"Evidently's report has {found} data blocks where 1 was expected (its HTML layout changed): "
            "it is neither written nor shown, since its data could not be escaped. Check the Evidently "
            "version against requirements.txt.",
            problem="report_layout",
        )
    return safe


def read_labels(path: Path) -> pd.Series:
    """A labels file: CSV with `request_id` and `prdtypecode` (the true class of each request's product),
    as `python -m core simulate --labelled` writes it."""
    try:
        frame = pd.read_csv(path, dtype={"request_id": str})
    except (OSError, ValueError) as exc:
        raise DataFormatError(
            f"Cannot read the labels file {path}: {exc}", problem="unreadable", path=str(path)
        ) from exc
    missing = {"request_id", "prdtypecode"} - set(frame.columns)
    if missing:
        raise DataFormatError(
            f"The labels file {path} lacks {sorted(missing)} (columns: request_id,prdtypecode).",
            problem="missing_column",
            path=str(path),
        )
    codes = pd.to_numeric(frame["prdtypecode"], errors="coerce")
    if codes.isna().any():
        bad = int(codes.isna().sum())
        raise DataFormatError(
            f"{bad} labels in {path} are not class codes.", problem="bad_label", path=str(path)
        )
    return pd.Series(codes.astype(int).to_numpy(), index=frame["request_id"].to_numpy())
