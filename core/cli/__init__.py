"""Command line: `python -m core <command>`. Each command wires one core step to Settings and the terminal.

Core errors become a red message and exit code 2; nothing here holds logic of its own.
"""

from __future__ import annotations

from core.cli import champion, monitor, service, stack
from core.cli.commands import app
from core.cli.flow import flow_app
from core.cli.mlflow_auth import mlflow_auth_app
from core.cli.review import review_app
from core.cli.secrets import secrets_app
from core.cli.tokens import token_app

app.command()(champion.models)
app.command()(champion.promote)
app.command()(champion.rollback)
app.command()(service.serve)
app.command()(service.info)
app.command()(monitor.drift)
app.command()(monitor.simulate)
app.command()(stack.up)
app.command()(stack.down)
app.command()(stack.status)
app.add_typer(flow_app, name="flow")
app.add_typer(review_app, name="review")
app.add_typer(token_app, name="token")
app.add_typer(mlflow_auth_app, name="mlflow-auth")
app.add_typer(secrets_app, name="secrets")

__all__ = ["app", "main"]


def main() -> None:
    app(prog_name="python -m core")
