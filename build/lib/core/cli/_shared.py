"""What every command module shares: the terminal, common options, the progress display, the error exit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)

# help texts are rich markup: a literal "[" is written "\\["
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Raw challenge files \\[default: RAKUTEN_DATA_DIR or data/raw]."),
]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes \\[default: all cores].", min=1)]


@contextmanager
def progress() -> Iterator[Callable[[str, int, int], None]]:
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


def fail(exc: Exception) -> typer.Exit:
    """Print a core error as one red line and exit with code 2."""
    console.print(f"[bold red]Error:[/] {exc}")
    return typer.Exit(code=2)
