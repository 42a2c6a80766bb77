"""First use: make sure there is ingested data, generating demo data when the data folder is empty.

Demo data is only ever written to the default data folder: a configured `RAKUTEN_DATA_DIR` that lacks
the challenge files is an error, never silently filled with generated products.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings
from core.data.challenge import fingerprint, image_state, locate
from core.data.demo.generator import DemoSpec, write_demo
from core.data.ingest import ingest, load_report
from core.errors import DataNotFoundError
from core.progress import StageProgress


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
    return settings.raw_dir == settings.root / "data" / "raw"


def prepare(settings: Settings, *, workers: int = 1, progress: StageProgress | None = None) -> PrepareOutcome:
    """Generate demo data if needed, then ingest if the raw files changed since the last ingest."""
    raw = settings.raw_dir
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

    report = load_report(settings.interim)
    current = report is not None and (
        report.source_dir == str(files.root)
        and report.stats.get("fingerprint") == fingerprint(files)
        and report.stats.get("image_state") == image_state(files)
    )
    if current and report is not None:
        return PrepareOutcome(generated, False, report.status)
    result = ingest(
        raw, settings.interim, image_check=settings.image_check, workers=workers, progress=progress
    )
    return PrepareOutcome(generated, True, result.report.status)
