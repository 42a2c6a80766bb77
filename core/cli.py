"""Command line: `python -m core <command>`. Each command wires one core step to Settings and the terminal.

Core errors become a red message and exit code 2; nothing here holds logic of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.config import Settings, get_settings
from core.errors import RakutenError

app = typer.Typer(
    name="core",
    help="Rakuten product classification platform: data, training, serving and monitoring commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Raw challenge files [default: RAKUTEN_DATA_DIR or data/raw]."),
]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes [default: all cores].", min=1)]


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display; yields `update(stage, done, total)` for core steps."""
    with Progress(
        TextColumn("[bold]{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[bold red]Error:[/] {exc}")
    return typer.Exit(code=2)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command("demo-data")
def demo_data(
    rows: Annotated[int, typer.Option(help="Train rows (the real set has 84,916).", min=27)] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 42,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Write the 500×500 JPEGs.")] = True,
    test_rows: Annotated[
        int | None, typer.Option(help="Test rows [default: real test/train ratio].", min=0)
    ] = None,
    label_noise: Annotated[float, typer.Option(help="Share of train labels flipped.", min=0, max=0.5)] = 0.03,
    out: Annotated[
        Path | None, typer.Option(help="Target folder [default: RAKUTEN_DATA_DIR or data/raw].")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace challenge files already in the directory.")
    ] = False,
    workers: WorkersOpt = None,
) -> None:
    """Generate a demo dataset in the exact layout of the challenge download."""
    from core.data.demo.generator import DemoSpec, write_demo

    settings = get_settings()
    target = out or settings.raw_dir
    spec = DemoSpec(rows=rows, seed=seed, test_rows=test_rows, images=images, label_noise=label_noise)
    try:
        with _progress() as update:
            write_demo(
                target, spec, workers=workers or settings.n_workers, overwrite=overwrite, progress=update
            )
    except RakutenError as exc:
        raise _fail(exc) from exc
    console.print(f"[green]Wrote[/] {rows:,} train + {spec.n_test:,} test rows to {target}")


@app.command()
def ingest(
    data_dir: DataDirOpt = None,
    out: Annotated[Path | None, typer.Option(help="Output folder [default: data/interim].")] = None,
    image_check: Annotated[
        str | None, typer.Option(help="decode | exists | none [default: RAKUTEN_IMAGE_CHECK or decode].")
    ] = None,
    workers: WorkersOpt = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any row was quarantined.")] = False,
) -> None:
    """Validate the challenge files and write the merged tables, quarantine and validation report."""
    from core.data.ingest import ingest as run_ingest

    settings = get_settings()
    mode = image_check or settings.image_check
    if mode not in ("decode", "exists", "none"):
        raise _fail(ValueError(f"--image-check must be decode, exists or none, not {mode!r}"))
    try:
        with _progress() as update:
            result = run_ingest(
                data_dir or settings.raw_dir,
                out or settings.interim,
                image_check=mode,  # type: ignore[arg-type]
                workers=workers or settings.n_workers,
                progress=update,
            )
    except RakutenError as exc:
        raise _fail(exc) from exc
    _print_report(result.report, result.outputs)
    if strict and result.report.status == "quarantined":
        raise typer.Exit(code=1)


def _print_report(report: Any, outputs: dict[str, Path]) -> None:
    colour = {"passed": "green", "warnings": "yellow", "quarantined": "yellow"}[report.status]
    console.print(f"Validation: [bold {colour}]{report.status}[/]")
    for split in ("train", "test"):
        st = report.stats.get(split)
        if st:
            console.print(
                f"  {split}: {st['rows_kept']:,} rows kept, {st['rows_quarantined']:,} quarantined, "
                f"{st['images_missing']:,} images missing, {st['images_corrupt']:,} corrupt"
            )
    if report.problems:
        table = Table("severity", "split", "problem", "rows", "examples")
        for p in report.problems:
            table.add_row(p.severity, p.split, p.code, f"{p.count:,}", ", ".join(map(str, p.row_ids[:5])))
        console.print(table)
    for name, path in outputs.items():
        console.print(f"  [dim]{name}:[/] {path}")


@app.command()
def prepare(
    workers: WorkersOpt = None,
) -> None:
    """First use: generate demo data if the data folder is empty, then ingest if anything changed."""
    from core.data.prepare import prepare as run_prepare

    settings = get_settings()
    try:
        with _progress() as update:
            outcome = run_prepare(settings, workers=workers or settings.n_workers, progress=update)
    except RakutenError as exc:
        raise _fail(exc) from exc
    console.print(outcome.summary)


@app.command()
def info() -> None:
    """Show the configuration in effect (secrets masked) and the state of the data."""
    from core.data.ingest import load_report

    settings = get_settings()
    table = Table("setting", "value", title=f"Settings ({settings.mode} mode)")
    for key, value in _settings_rows(settings):
        table.add_row(key, value)
    console.print(table)
    report = load_report(settings.interim)
    console.print(
        f"Ingested data: {report.status} ({report.created_at}, from {report.source_dir})"
        if report
        else "Ingested data: none yet (run `python -m core prepare`)"
    )


def _settings_rows(settings: Settings) -> list[tuple[str, str]]:
    rows = []
    for key, value in settings.model_dump().items():
        if "token" in key or "password" in key:
            value = "set (hidden)" if value else "unset"
        rows.append((key, "unset" if value is None else str(value)))
    return rows


def main() -> None:
    app(prog_name="python -m core")
