"""`python -m core secrets check|generate`: the deployment's secrets (`core.credentials`).

`check` is the full stack's first service: it reads the environment (or a `.env` file) and, outside local
development, refuses to let anything start while a secret is unset, a placeholder or too short, naming
each variable (never its value). `generate` prints a fresh value for every secret, for a new `.env` or a
rotation; only the values go to standard output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from core.cli._shared import console
from core.credentials import SECRETS, enforced, generate, refusals

secrets_app = typer.Typer(help="The deployment's secrets: check them before a start, generate fresh ones.")

EnvFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--env-file", help="Check this file's values \\[default: the process environment].", exists=True
    ),
]


@secrets_app.command("check")
def check(env_file: EnvFileOpt = None) -> None:
    """Refuse (exit code 2) a secret that is unset, a placeholder or too short, naming each variable.

    Outside local development only (RAKUTEN_ENVIRONMENT); in local development the same findings are
    warnings."""
    environ = dict(os.environ) if env_file is None else _read_env_file(env_file)
    found = refusals(environ)
    strict = enforced(environ)
    for name, reason in found.items():
        console.print(f"[bold {'red' if strict else 'yellow'}]{name}[/] {reason}")
    if found and strict:
        console.print(f"[bold red]Refused:[/] {len(found)} secret(s) to set before the stack may start.")
        raise typer.Exit(code=2)
    if found:
        console.print("[yellow]Local development: not enforced.[/]")
    else:
        console.print("[green]Every secret is set[/] (none a placeholder, none too short).")


def _read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines as Compose reads them (comments and blank lines skipped, quotes removed)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            found[name.strip()] = value.strip().strip("'\"")
    return found


@secrets_app.command("generate")
def generate_command() -> None:
    """Print `NAME=value` with a fresh random value for every secret (optional ones commented out)."""
    values = generate()
    for secret in SECRETS:
        value = values[secret.name]
        if value is None:
            typer.echo(
                f"# {secret.name}: made by the platform once the api runs: docker compose run --rm "
                "--no-deps api python -m core token create console --role operator"
            )
        else:
            typer.echo(f"{'' if secret.required else '# '}{secret.name}={value}")
