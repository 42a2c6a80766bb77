"""`python -m core token create|list|revoke`: the named service tokens machines present (RAKUTEN_TOKEN,
a bearer token to the API).

They act on this host's token file (`Settings.service_tokens_file`): whoever can write it manages the
tokens, so these commands act as the local user, whatever RAKUTEN_TOKEN holds, and each change is
written to the audit trail. A token is printed once, alone on standard output, so a script can capture
it (`TOKEN=$(python -m core token create ci --role operator)`); everything else goes to the terminal.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from core.cli._shared import acting, console, fail
from core.config import get_settings
from core.errors import RakutenError
from core.identity.roles import Action, Role, local_user
from core.identity.service_tokens import TokenFileError, create_token, read_tokens, revoke_token

token_app = typer.Typer(help="Service tokens for machines: create (shown once), list, revoke.")


def _label(token_id: str, name: str) -> str:
    return f"token:{token_id} ({name})"


@token_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who uses it: a service, a CI job (audited as service:NAME).")],
    role: Annotated[
        list[Role],
        typer.Option("--role", help="A role it holds (repeatable): viewer, reviewer, operator, admin."),
    ],
    days: Annotated[int | None, typer.Option(help="Expires after N days \\[default: never].", min=1)] = None,
) -> None:
    """Make a token and print it once (standard output): only its digest is kept."""
    settings = get_settings()
    path = settings.service_tokens_file
    try:
        with acting(settings, Action.MANAGE_TOKENS, target=_label("?", name), who=local_user()) as (_, act):
            token, record = create_token(path, name, role, days=days)
            act.target = _label(record.id, record.name)
            act.detail = f"roles {','.join(record.roles)}, expires {record.expires_at or 'never'}"
    except (RakutenError, ValueError) as exc:
        raise fail(exc) from exc
    typer.echo(token)
    console.print(
        f"[green]Created[/] service token [bold]{record.name}[/] (id {record.id}, "
        f"{', '.join(record.roles)}, expires {record.expires_at or 'never'}) in {path}.\n"
        "It is shown this once: give it to the client now (RAKUTEN_TOKEN, or `Authorization: Bearer …`)."
    )


@token_app.command("list")
def list_tokens() -> None:
    """The tokens in the file: id, name, roles, created, expires (never the token or its digest)."""
    path = get_settings().service_tokens_file
    try:
        tokens = read_tokens(path)
    except TokenFileError as exc:
        raise fail(exc) from exc
    table = Table("id", "name", "roles", "created", "expires", title=str(path))
    for token in tokens:
        table.add_row(
            token.id, token.name, ", ".join(token.roles), token.created_at, token.expires_at or "never"
        )
    console.print(table)


@token_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (`token list`).")],
) -> None:
    """Remove a token: clients presenting it are refused from the next request on (no restart)."""
    settings = get_settings()
    try:
        with acting(settings, Action.MANAGE_TOKENS, target=f"token:{token_id}", who=local_user()) as (_, act):
            removed = revoke_token(settings.service_tokens_file, token_id)
            act.target = _label(removed.id, removed.name)
            act.detail = "revoked"
    except KeyError as exc:  # its message is the one argument
        raise fail(RakutenError(exc.args[0])) from exc
    except (RakutenError, ValueError) as exc:
        raise fail(exc) from exc
    console.print(f"[green]Revoked[/] service token {removed.name} (id {removed.id}).")
