"""Validation rules for the challenge tables and the report they produce.

Pure functions on DataFrames. Three kinds of outcome:
- fatal: the files cannot be used together (ids of X and Y do not match) → `DataFormatError`;
- error: a row cannot be used → it goes to quarantine with its reasons, nothing is silently dropped;
- warning / info: the row is kept and the problem reported (a missing image: the text is still usable).
"""
# Size: every validation rule of the challenge tables and the report they produce, side by side.

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from core.categories import CODES
from core.data.challenge import ID
from core.errors import DataFormatError

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: Final[dict[str, int]] = {"error": 0, "warning": 1, "info": 2}
_EXAMPLES: Final = 10

# Every row-level rule, its severity and what a user should do about it.
RULES: Final[dict[str, tuple[Severity, str]]] = {
    "malformed_line": ("error", "CSV line with the wrong number of fields (unquoted comma or newline?)"),
    "invalid_id": ("error", "row id is not an integer"),
    "duplicate_id": ("error", "row id appears more than once in X"),
    "duplicate_label_id": ("error", "row id appears more than once in Y"),
    "malformed_label_line": ("error", "the row's line in Y has the wrong number of fields"),
    "missing_label": ("error", "no prdtypecode for this row"),
    "unknown_label": ("error", "prdtypecode is not one of the 27 product type codes"),
    "empty_title": ("error", "designation (title) is empty"),
    "invalid_productid": ("error", "productid is missing or not an integer"),
    "invalid_imageid": ("error", "imageid is missing or not an integer"),
    "missing_image": ("warning", "no image file for this row (kept: text can still be used)"),
    "corrupt_image": ("warning", "image file cannot be decoded (kept: text can still be used)"),
    "unexpected_image_size": ("info", "image is not 500×500 pixels"),
    "test_id_overlaps_train": ("warning", "a test row id is also a train row id"),
    "review_excluded": ("info", "set aside by a reviewer (not a product / unclear): moved to the quarantine"),
    "correction_conflict": (
        "warning",
        "a reviewed label no longer fits the download (row gone or label changed): not applied; ids are "
        "correction ids",
    ),
}


@dataclass
class Problem:
    """One rule broken by one or more rows of one split."""

    code: str
    severity: Severity
    split: str
    message: str
    row_ids: list[int] = field(default_factory=list)
    count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ValidationReport:
    """Everything ingestion found, machine-readable (`to_dict`) and readable (`to_markdown`)."""

    source_dir: str
    naming: str
    created_at: str
    problems: list[Problem]
    stats: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> Literal["passed", "warnings", "quarantined"]:
        severities = {p.severity for p in self.problems}
        if "error" in severities:
            return "quarantined"
        return "warnings" if "warning" in severities else "passed"

    def total(self, key: str, splits: Iterable[str] = ("train", "test")) -> int:
        """A per-split count from `stats` (e.g. `rows_kept`) summed over the splits present."""
        return sum(int(self.stats[s][key]) for s in splits if s in self.stats)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "source_dir": self.source_dir,
            "naming": self.naming,
            "created_at": self.created_at,
            "stats": self.stats,
            "notes": self.notes,
            "problems": [p.to_dict() for p in self.problems],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        return cls(
            source_dir=data["source_dir"],
            naming=data["naming"],
            created_at=data["created_at"],
            problems=[Problem(**p) for p in data["problems"]],
            stats=data["stats"],
            notes=data.get("notes", []),
        )

    def to_markdown(self) -> str:
        s = self.stats
        lines = [
            "# Validation report",
            "",
            f"- Status: **{self.status}**",
            f"- Source: `{self.source_dir}` ({self.naming} file names)",
            f"- Created: {self.created_at}",
        ]
        for split in ("train", "test"):
            st = s.get(split)
            if st:
                lines.append(
                    f"- {split}: {st['rows_read']:,} rows read, {st['rows_kept']:,} kept, "
                    f"{st['rows_quarantined']:,} quarantined, "
                    f"{st['empty_descriptions']:,} empty descriptions, "
                    f"{st['images_missing']:,} missing and {st['images_corrupt']:,} corrupt images"
                )
        fixed = s.get("corrections")
        if fixed:
            lines.append(
                f"- Reviewed labels (`{fixed['file']}`, sha256 {fixed['file_sha256'][:12]}): "
                f"{fixed['corrections']:,} corrections — {fixed['relabelled']:,} relabelled, "
                f"{fixed['confirmed']:,} confirmed, {fixed['excluded']:,} set aside, "
                f"{fixed['added']:,} served products added, {fixed['conflicts']:,} conflicts not applied"
            )
            lines += [f"  - conflict: {c['product_key']}: {c['reason']}" for c in fixed["conflict_list"][:20]]
        lines.append(f"- Data version: `{s.get('data_version', s.get('fingerprint', 'unknown'))}`")
        lines += [f"- Note: {n}" for n in self.notes]
        lines += ["", "## Problems", ""]
        if not self.problems:
            lines.append("None.")
        else:
            lines += ["| severity | split | problem | rows | example row ids |", "|---|---|---|---:|---|"]
            for p in self.problems:
                examples = ", ".join(map(str, p.row_ids[:_EXAMPLES])) + (" …" if p.count > _EXAMPLES else "")
                lines.append(
                    f"| {p.severity} | {p.split} | {p.code}: {p.message} | {p.count:,} | {examples} |"
                )
        return "\n".join(lines) + "\n"


@dataclass
class RowCheck:
    """Result of the row rules on one split: kept rows (typed), quarantined rows (with reasons), problems."""

    kept: pd.DataFrame
    quarantined: pd.DataFrame
    problems: list[Problem]


def problem(code: str, split: str, row_ids: Iterable[int]) -> Problem:
    ids = sorted({int(i) for i in row_ids})
    severity, message = RULES[code]
    return Problem(code, severity, split, message, ids, len(ids))


def _as_int(values: pd.Series) -> pd.Series:
    """Integer values where the string is an integer, <NA> elsewhere."""
    stripped = values.astype("string").str.strip()
    ok = stripped.str.fullmatch(r"[+-]?\d+").fillna(False).astype(bool)
    out = pd.Series(pd.NA, index=values.index, dtype="Int64")
    out[ok] = stripped[ok].astype("int64")
    return out


def _bad_line_ids(bad_lines: list[list[str]]) -> list[int]:
    ids = _as_int(pd.Series([fields[0] if fields else "" for fields in bad_lines], dtype="string"))
    return [int(i) for i in ids.dropna()]


def check_rows(
    x: pd.DataFrame,
    split: str,
    *,
    y: pd.DataFrame | None = None,
    x_bad_lines: list[list[str]] | None = None,
    y_bad_lines: list[list[str]] | None = None,
) -> RowCheck:
    """Apply the row rules to one split (`y` given for train). Raises `DataFormatError` if X and Y
    do not describe the same rows."""
    reasons: dict[str, pd.Series] = {}
    ids = _as_int(x[ID])
    reasons["invalid_id"] = ids.isna()
    reasons["duplicate_id"] = ids.duplicated(keep=False) & ids.notna()
    title = x["designation"].fillna("").astype("string").str.strip()
    reasons["empty_title"] = title.eq("")
    productid = _as_int(x["productid"])
    imageid = _as_int(x["imageid"])
    reasons["invalid_productid"] = productid.isna()
    reasons["invalid_imageid"] = imageid.isna()

    typed = pd.DataFrame(
        {
            ID: ids,
            "designation": x["designation"].astype("string"),
            "description": x["description"].astype("string"),
            "productid": productid,
            "imageid": imageid,
        },
        index=x.index,
    )

    x_bad_ids = _bad_line_ids(x_bad_lines or [])
    if y is not None:
        label_ids = _as_int(y[ID])
        y_bad_ids = set(_bad_line_ids(y_bad_lines or []))
        _check_alignment(ids, label_ids, x_excused=set(x_bad_ids), y_excused=y_bad_ids)
        dup_label = set(label_ids[label_ids.duplicated(keep=False)].dropna().astype(int))
        reasons["duplicate_label_id"] = ids.isin(dup_label)
        reasons["malformed_label_line"] = ids.isin(y_bad_ids)
        labels = y.assign(_id=label_ids).dropna(subset=["_id"]).drop_duplicates("_id").set_index("_id")
        raw_label = ids.map(labels["prdtypecode"])
        code = _as_int(raw_label)
        typed["prdtypecode"] = code
        reasons["missing_label"] = raw_label.isna() & ~reasons["malformed_label_line"]
        reasons["unknown_label"] = raw_label.notna() & ~code.isin(CODES).fillna(False).astype(bool)

    flags = pd.DataFrame({k: v.fillna(False).astype(bool) for k, v in reasons.items()}, index=x.index)
    bad = flags.any(axis=1).to_numpy()
    problems = [
        problem(code, split, _ids_for(x, ids, flags[code])) for code in flags.columns if flags[code].any()
    ]

    quarantined = x.loc[bad].copy()
    quarantined.insert(0, "split", split)
    quarantined["reasons"] = _reasons_text(flags.loc[bad])
    if y is not None:
        quarantined["prdtypecode"] = x.loc[bad, ID].map(y.drop_duplicates(ID).set_index(ID)["prdtypecode"])
    if x_bad_lines:
        problems.append(problem("malformed_line", split, x_bad_ids))
        malformed = pd.DataFrame(
            {
                "split": split,
                ID: [f[0] if f else "" for f in x_bad_lines],
                "raw_fields": [" | ".join(f) for f in x_bad_lines],
                "reasons": "malformed_line",
            }
        )
        quarantined = pd.concat([quarantined, malformed], ignore_index=True)
    kept = typed.loc[~bad].reset_index(drop=True)
    kept[ID] = kept[ID].astype("int64")
    for col in ("productid", "imageid"):
        kept[col] = kept[col].astype("int64")
    if "prdtypecode" in kept:
        kept["prdtypecode"] = kept["prdtypecode"].astype("int64")
    return RowCheck(kept, quarantined.reset_index(drop=True), problems)


def _ids_for(x: pd.DataFrame, ids: pd.Series, mask: pd.Series) -> list[int]:
    """Row ids of flagged rows; for rows whose id is not an integer, their position in the file."""
    picked = ids[mask]
    return [int(i) if pd.notna(i) else int(pos) for pos, i in zip(np.flatnonzero(mask), picked, strict=True)]


def _reasons_text(flags: pd.DataFrame) -> pd.Series:
    names = np.array(flags.columns)
    return pd.Series([";".join(names[row]) for row in flags.to_numpy()], index=flags.index, dtype="string")


def _check_alignment(x_ids: pd.Series, y_ids: pd.Series, *, x_excused: set[int], y_excused: set[int]) -> None:
    # Ids of lines that did not parse are quarantined on their side; they do not count as misaligned.
    xs = set(x_ids.dropna().astype(int))
    ys = set(y_ids.dropna().astype(int))
    x_only = sorted(xs - ys - y_excused)
    y_only = sorted(ys - xs - x_excused)
    if y_ids.isna().any():
        raise DataFormatError(
            f"The label file has {int(y_ids.isna().sum())} row(s) whose id is not an integer, so they cannot "
            "be matched to X. Fix or remove those lines.",
            problem="misaligned_ids",
        )
    if x_only or y_only:
        parts = []
        if x_only:
            parts.append(f"{len(x_only)} id(s) in X have no label (e.g. {x_only[:_EXAMPLES]})")
        if y_only:
            parts.append(f"{len(y_only)} label id(s) have no row in X (e.g. {y_only[:_EXAMPLES]})")
        raise DataFormatError(
            "X and Y do not describe the same rows: "
            + "; ".join(parts)
            + ". Use the X_train and Y_train files of the same download, unmodified.",
            problem="misaligned_ids",
        )


def image_problems(split: str, ids: pd.Series, status: pd.Series) -> list[Problem]:
    """Problems for image statuses (`ok`, `missing`, `corrupt`, `odd_size`, `unchecked`)."""
    out = []
    for code, value in (
        ("missing_image", "missing"),
        ("corrupt_image", "corrupt"),
        ("unexpected_image_size", "odd_size"),
    ):
        mask = status.eq(value)
        if mask.any():
            out.append(problem(code, split, ids[mask]))
    return out


def sort_problems(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (SEVERITY_ORDER[p.severity], p.split, -p.count, p.code))
