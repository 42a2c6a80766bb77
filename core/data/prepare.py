"""First use and freshness: is there ingested data, does it match the raw files, what would fix it.

Demo data is only ever written to the default data folder: a configured `RAKUTEN_DATA_DIR` that lacks
the challenge files is an error, never silently filled with generated products.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.config import Settings
from core.data.challenge import ChallengeFiles, file_state, fingerprint, image_state, locate
from core.data.demo.generator import DemoSpec, write_demo
from core.data.ingest import ingest, load_report
from core.data.validation import ValidationReport
from core.errors import DataNotFoundError
from core.progress import StageProgress

StateName = Literal["ready", "stale", "not_ingested", "empty_default", "missing"]


@dataclass(frozen=True)
class DataState:
    """Where the data stands and, in `message`, what the user should know about it."""

    name: StateName
    message: str

    @property
    def needs_action(self) -> bool:
        return self.name != "ready"


@dataclass(frozen=True)
class PrepareOutcome:
    generated: bool
    ingested: bool
    status: str

    @property
    def summary(self) -> str:
        done = [
            what
            for what, flag in (("generated demo data", self.generated), ("ingested", self.ingested))
            if flag
        ]
        return f"Data ready ({', '.join(done) or 'up to date'}): validation {self.status}."


def is_default_data_dir(settings: Settings) -> bool:
    return settings.data_dir == settings.root / Settings.model_fields["data_dir"].default


def _is_current(report: ValidationReport | None, files: ChallengeFiles, corrections: Path) -> bool:
    """Same folder, same image folders, same CSV contents (hashed only if size or time changed), same
    corrections file."""
    if report is None or report.source_dir != str(files.root):
        return False
    if report.stats.get("corrections", {}).get("file_sha256") != _sha256(corrections):
        return False
    if report.stats.get("image_state") != image_state(files):
        return False
    return report.stats.get("file_state") == file_state(files) or report.stats.get(
        "fingerprint"
    ) == fingerprint(files)


def data_state(settings: Settings) -> DataState:
    """Check the raw folder against the last ingest (cheap unless the files were touched)."""
    raw = settings.data_dir
    try:
        files = locate(raw)
    except DataNotFoundError as exc:
        if is_default_data_dir(settings):
            return DataState(
                "empty_default", f"No challenge files in {raw}: demo data can be generated there."
            )
        return DataState("missing", str(exc))
    report = load_report(settings.interim_dir)
    if report is None:
        return DataState("not_ingested", f"The challenge files in {raw} have not been ingested yet.")
    if report.source_dir != str(files.root):
        return DataState("stale", f"The data shown was ingested from {report.source_dir}, not from {raw}.")
    if not _is_current(report, files, settings.corrections_file):
        return DataState(
            "stale",
            f"The files in {raw} or the reviewed labels changed since the last ingest ({report.created_at}).",
        )
    return DataState("ready", f"Ingested {report.created_at} from {raw}.")


def prepare(
    settings: Settings, *, workers: int = 1, force: bool = False, progress: StageProgress | None = None
) -> PrepareOutcome:
    """Generate demo data if needed, then ingest if the raw files changed since the last ingest
    (or always, with `force`)."""
    raw = settings.data_dir
    generated = False
    try:
        files = locate(raw)
    except DataNotFoundError:
        if not is_default_data_dir(settings):
            raise
        spec = DemoSpec(rows=settings.demo_rows, seed=settings.demo_seed, images=settings.demo_images)
        write_demo(raw, spec, workers=workers, progress=progress)
        generated = True
        files = locate(raw)

    report = load_report(settings.interim_dir)
    if not force and report is not None and _is_current(report, files, settings.corrections_file):
        return PrepareOutcome(generated, False, report.status)
    result = ingest(
        raw,
        settings.interim_dir,
        image_check=settings.image_check,
        workers=workers,
        corrections=settings.corrections_file,
        progress=progress,
    )
    return PrepareOutcome(generated, True, result.report.status)


def _sha256(path: Path) -> str | None:
    """The corrections file's hash, None when there is none (as a report without corrections says)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
