"""`python -m core review scan|stats|export|import`: the label-issue scan, the corrections store's
counts, and its file (the overlay the next ingest applies). Scan, export and import act for the
command's principal (`core.cli._shared.acting`: the reviewer role); stats is open."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from core.cli._shared import WorkersOpt, acting, console, fail, progress
from core.config import get_settings
from core.errors import RakutenError
from core.identity.roles import Action

if TYPE_CHECKING:
    from core.storage.corrections import CorrectionsStore

# Lazy imports: each command imports what it runs (the scan's cleanlab and scikit-learn take ~2 s).

review_app = typer.Typer(help="Review and correct: label-issue scan, corrections store, corrections file.")


@review_app.command()
def scan(workers: WorkersOpt = None) -> None:
    """Find suspicious training labels (confident learning on the last training's out-of-fold
    probabilities) and identical products labelled differently; the Review page's training queue."""
    from core.review.label_issues import scan as run_scan

    settings = get_settings()
    n = workers or settings.n_workers
    try:
        with acting(settings, Action.SCAN_LABELS, target="labels:training") as (_, act), progress() as update:
            result = run_scan(settings, workers=n, progress=update)
            act.detail = f"{result.meta['label_issues']:,} label issues"
    except RakutenError as exc:
        raise fail(exc) from exc
    meta = result.meta
    console.print(
        f"[bold]{meta['label_issues']:,}[/] label issues among {meta['rows_scanned']:,} out-of-fold rows, "
        f"{meta['duplicate_rows']:,} rows in {meta['duplicate_groups']:,} groups of identical products "
        f"labelled differently ({meta['seconds']} s) → {settings.label_issues_file}"
    )


@review_app.command()
def stats() -> None:
    """How many corrections, by source, verdict and reviewer."""
    with _store() as store:
        counts = store.stats()
    console.print(
        f"[bold]{counts['active']:,}[/] active corrections ({counts['undone']:,} undone), "
        f"last {counts['last']}"
    )
    for title in ("by_source", "by_verdict", "by_reviewer"):
        table = Table(title.replace("_", " "), "corrections")
        for name, n in counts[title].items():
            table.add_row(name, f"{n:,}")
        console.print(table)


@review_app.command("export")
def export_corrections() -> None:
    """Write the active corrections to data/corrections/labels.csv (with the photos of corrected served
    products): the next ingest applies it over the downloaded labels."""
    from core.review.inbox import export

    settings = get_settings()
    target = f"file:{settings.corrections_file}"
    with _store() as store, acting(settings, Action.EXPORT_CORRECTIONS, target=target) as (_, act):
        done = export(settings, store)
        act.detail = f"{done.rows:,} corrections, {done.photos:,} photos"
    console.print(f"{done.rows:,} corrections, {done.photos:,} photos → {done.path}")
    if done.photos_missing:
        console.print(
            f"[yellow]{done.photos_missing:,} corrected served products have no kept photo (text only).[/]"
        )
    console.print("The next ingest applies it (`python -m core ingest`, `dvc repro`, or Retrain).")


@review_app.command("import")
def import_corrections(
    path: Annotated[
        Path, typer.Argument(help="A corrections file (labels.csv format)", exists=True, dir_okay=False)
    ],
) -> None:
    """Add a corrections file's rows to the store: all of them, or none when any row is bad,
    duplicated or conflicting."""
    from core.review.inbox import import_file

    with (
        _store() as store,
        acting(get_settings(), Action.IMPORT_CORRECTIONS, target=f"file:{path}") as (_, act),
    ):
        added = import_file(store, path)
        act.detail = f"{added:,} corrections added"
    console.print(f"{added:,} corrections imported from {path}.")


@contextmanager
def _store() -> Iterator[CorrectionsStore]:
    """The corrections store, closed after the command; its errors, a database that cannot be reached
    and a refusal (`acting` inside it) end the command with the message and exit code 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.review.inbox import open_store

    try:
        store = open_store(get_settings())
    except (RakutenError, SQLAlchemyError) as exc:
        raise fail(exc) from exc
    try:
        yield store
    except (RakutenError, SQLAlchemyError) as exc:
        raise fail(exc) from exc
    finally:
        store.close()
