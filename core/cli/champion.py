"""The champion's commands: list the registered versions and the promotion history, promote, roll back.

Promote and roll back act for the command's principal (RAKUTEN_TOKEN's owner; in local development the
local user): the registry's history and the audit trail both name them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from core.cli._shared import acting, console, fail
from core.config import get_settings
from core.errors import RakutenError
from core.identity.roles import Action
from core.tracking.registry import Registry, open_registry


def _registry() -> Registry:
    return open_registry(get_settings())


def _v(version: int | None) -> str:
    return "—" if version is None else f"v{version}"


def models() -> None:
    """List registered versions, their aliases and the promotion history."""
    registry = _registry()
    table = Table("version", "aliases", "weighted F1", "created", "run", title=registry.name)
    for v in registry.versions():
        table.add_row(
            str(v.version),
            ", ".join(v.aliases),
            v.tags.get("weighted_f1", ""),
            f"{v.created_at:%Y-%m-%d %H:%M}",
            (v.run_id or "")[:8],
        )
    console.print(table)
    for move in registry.history():
        console.print(
            f"  {move.at}  {move.alias}: {_v(move.from_version)} → v{move.to_version} "
            f"({move.kind} by {move.actor}) {move.reason}"
        )


def promote(
    version: Annotated[int, typer.Argument(help="Registered version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the promotion history and the audit trail).")],
) -> None:
    """Make a version champion by hand (recorded with your name and reason; needs the operator role)."""
    settings = get_settings()
    try:
        with acting(settings, Action.PROMOTE, target=f"model:v{version}", reason=reason) as (who, act):
            move = open_registry(settings).promote(version, actor=who.name, reason=reason)
            act.detail = f"champion {_v(move.from_version)} → v{move.to_version}"
    except RakutenError as exc:
        raise fail(exc) from exc
    console.print(f"[green]Champion[/] {_v(move.from_version)} → v{move.to_version}")


def rollback(
    reason: Annotated[
        str, typer.Option(help="Why (kept in the promotion history and the audit trail).")
    ] = "rollback",
) -> None:
    """Give the champion alias back to the previous champion (needs the operator role)."""
    settings = get_settings()
    try:
        with acting(settings, Action.ROLLBACK, target="model:champion", reason=reason) as (who, act):
            move = open_registry(settings).rollback(actor=who.name, reason=reason)
            act.target = f"model:v{move.to_version}"
            act.detail = f"champion v{move.from_version} → v{move.to_version}"
    except RakutenError as exc:
        raise fail(exc) from exc
    console.print(f"[green]Rolled back[/] champion v{move.from_version} → v{move.to_version}")
