"""Serving the champion over HTTP, and the configuration in effect."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.table import Table

from core.cli._shared import console
from core.config import Settings, get_settings

# Lazy imports: each command imports what it runs: uvicorn and the app's modules (~2–7 s) are not loaded for
# `--help`.


def serve(
    host: Annotated[str | None, typer.Option(help="\\[default: RAKUTEN_API_HOST, 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="\\[default: RAKUTEN_API_PORT, 8000]")] = None,
    workers: Annotated[int | None, typer.Option(help="\\[default: RAKUTEN_API_WORKERS]", min=1)] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Serve the champion model over HTTP (FastAPI + uvicorn); OpenAPI docs at /docs."""
    from core.serving.server import run_server

    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    workers = workers or settings.api_workers
    console.print(f"Serving on http://{host}:{port} (docs: /docs) with {workers} worker(s)")
    run_server(host=host, port=port, workers=workers, log_level=log_level)


def info() -> None:
    """Show the configuration in effect (secrets masked) and the state of the data."""
    from core.data.ingest import load_report

    settings = get_settings()
    table = Table("setting", "value", title=f"Settings ({settings.mode} mode)")
    for key, value in _settings_rows(settings):
        table.add_row(key, value)
    console.print(table)
    report = load_report(settings.interim_dir)
    console.print(
        f"Ingested data: {report.status} ({report.created_at}, from {report.source_dir})"
        if report
        else "Ingested data: none yet (run `python -m core prepare`)"
    )


_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")


def _settings_rows(settings: Settings) -> list[tuple[str, str]]:
    rows = []
    for key, value in settings.model_dump().items():
        if "token" in key or "password" in key:
            value = "set (hidden)" if value else "unset"
        elif isinstance(value, str):
            value = _URL_PASSWORD.sub(r"\1***@", value)  # database URLs may carry a password
        rows.append((key, "unset" if value is None else str(value)))
    return rows
