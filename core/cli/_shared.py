"""What every command module shares: the terminal, common options, the progress display, the error exit,
the settings of commands that talk to the local stack (`stack_settings`), and `acting`: who runs a
command that changes something, checked and written to the audit trail."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.config import Settings, get_settings
from core.identity.roles import Action, Principal, Unauthenticated

if TYPE_CHECKING:
    from core.identity.guard import Act

# Lazy imports: the guard brings the audit trail's pandas and SQLAlchemy, the stack's driver httpx and
# supervisord's client; `--help` and the commands that use neither do not need them.

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


def stack_settings() -> Settings:
    """The settings of a command that talks to the local stack: where they do not say which ports it
    listens on (a shell without the variables `up` had), those of the stack running on this project."""
    from core.stack.supervisor import running_address

    settings = get_settings()
    address = running_address(settings)
    return address.applied_to(settings) if address else settings


def fail(exc: Exception) -> typer.Exit:
    """Print a core error as one red line and exit with code 2."""
    console.print(f"[bold red]Error:[/] {exc}")
    return typer.Exit(code=2)


@contextmanager
def acting(
    settings: Settings, action: Action, *, target: str, reason: str = "", who: Principal | None = None
) -> Iterator[tuple[Principal, Act]]:
    """Run the body as the command's principal (`who`, else `cli_principal`: RAKUTEN_TOKEN's owner, or in
    local development the local user), checked and recorded once in the audit trail (entry "cli").

    Raises `Unauthenticated` (recorded as a refusal by nobody) or `Forbidden` (recorded as refused)
    before the body; the body's errors are recorded as failed and raised. Commands turn all three into
    the red line and exit code 2 with `fail`, as any core error. The body may set the record's target
    and detail once it knows them (the version registered, the run started)."""
    from core.identity.guard import ANONYMOUS, Guard, cli_principal

    guard = Guard(settings, "cli")
    if who is None:
        try:
            who = cli_principal(settings)
        except Unauthenticated as exc:
            guard.refused(ANONYMOUS, action, target=target, detail=f"{exc.reason}: {exc}")
            raise
    with guard.acting(who, action, target=target, reason=reason) as act:
        yield who, act
