"""`python -m core.ui.serve [streamlit run options]`: the console as the local stack runs it.

A fresh Streamlit process pays for MLflow (its import and its store's first opening), Prefect's client
and settings, pandas, Arrow and Plotly the first time a page needs them: ~6 s on the first Overview a
user opens, on 2 busy cores. Here they are loaded first, and only then does `streamlit run app/Home.py`
start answering — the console answers a few seconds later and its first page comes as quick as the
next ones. Loading is best effort: whatever fails here is left to the page, which states it.

The console fails fast on a service that is down: MLflow's and Prefect's clients read their retry and
timeout settings from the process environment (`CONSOLE_ENVIRONMENT`), so a console started without
them starts again, at once, with them added (values already set win).
(`streamlit run app/Home.py` works as well: its first page is the slow one, its clients the patient ones.)

Sign-in: outside local development, or listening beyond loopback, the console refuses to start unless
the identity provider is configured (`core.identity.guard.console_refusal`); when it is, the provider's
settings are handed to `st.login` as Streamlit's `[auth]` secrets, in a private file written here.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Final

from core.config import Settings, get_settings
from core.identity.guard import console_refusal
from core.stack.programs import CONSOLE_ENVIRONMENT

# Lazy imports: the modules to warm are imported by name (`MODULES`), Streamlit's CLI after them.

APP: Final = Path(__file__).resolve().parents[2] / "app" / "Home.py"
# What the landing page (Overview) and the sidebar use; not the pages' own modules (their Streamlit
# caches are made inside the runtime), nor the training code (the pages that need it load it)
MODULES: Final = (
    "pandas",
    "pyarrow",
    "plotly.express",
    "httpx",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "prefect.client.orchestration",
    "core.orchestration.flow_runs",
    "core.tracking.registry",
    "core.tracking.training_runs",
    "core.monitoring.health",
    "core.storage.drift_reports",
)

log = logging.getLogger("core.ui.serve")


def warm(settings: Settings) -> list[str]:
    """Import what the first page needs and open the tracking store once (only one that exists:
    looking must not create it); the problems met, for the log."""
    from core.tracking.training_runs import tracking_store_missing

    problems = []
    for module in MODULES:
        try:
            importlib.import_module(module)
        except Exception as exc:
            problems.append(f"{module}: {exc}")
    import streamlit.delta_generator

    # Streamlit's one-time "are we in a REPL?" check walks the source of every frame of the first
    # script run (~0.5 s with these modules loaded): under `streamlit run` the answer is known
    if hasattr(streamlit.delta_generator, "_use_warning_has_been_displayed"):
        streamlit.delta_generator._use_warning_has_been_displayed = True
    if not tracking_store_missing(str(settings.mlflow_tracking_uri)):
        try:
            from core.tracking.store import connect

            connect(settings)  # the store's first opening (mappers, schema check) is once per process
        except Exception as exc:
            problems.append(f"tracking store: {exc}")
    return problems


def listen_address(argv: list[str], cwd: Path) -> str | None:
    """The address Streamlit will listen on: the flag, else its variable, else the project's config;
    None: every interface (Streamlit's default)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--server.address="):
            return arg.split("=", 1)[1]
        if arg == "--server.address" and i + 1 < len(argv):
            return argv[i + 1]
    if os.environ.get("STREAMLIT_SERVER_ADDRESS"):
        return os.environ["STREAMLIT_SERVER_ADDRESS"]
    try:
        config = tomllib.loads((cwd / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    address = config.get("server", {}).get("address")
    return str(address) if address else None


def auth_secrets(settings: Settings) -> str:
    """Streamlit's `[auth]` section for `st.login`, from the settings (TOML)."""

    def secret(value: object) -> str:
        return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)

    values = {
        "redirect_uri": settings.console_redirect_uri,
        "cookie_secret": secret(settings.oidc_cookie_secret),
        "client_id": str(settings.oidc_client_id),
        "client_secret": secret(settings.oidc_client_secret),
        "server_metadata_url": str(settings.oidc_server_metadata_url),
    }
    lines = ["[auth]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


def write_auth_secrets(settings: Settings) -> Path:
    """The `[auth]` secrets in a file only this user reads, replaced in one rename."""
    folder = settings.stack_dir / "console"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "auth-secrets.toml"
    fd, tmp = tempfile.mkstemp(prefix=".auth-secrets.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(auth_secrets(settings))
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _secrets_flags(settings: Settings) -> list[str]:
    """Streamlit's own secrets files first, then the sign-in settings (later files win)."""
    if not settings.sign_in:
        return []
    files = [Path.home() / ".streamlit" / "secrets.toml", Path.cwd() / ".streamlit" / "secrets.toml"]
    files.append(write_auth_secrets(settings))
    return [flag for path in files for flag in ("--secrets.files", str(path))]


def main() -> None:
    missing = {k: v for k, v in CONSOLE_ENVIRONMENT.items() if k not in os.environ}
    if missing:  # a new process image with them (nothing to clean up: nothing was started yet)
        command = [sys.executable, "-m", "core.ui.serve", *sys.argv[1:]]
        os.execve(sys.executable, command, {**os.environ, **missing})
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    settings = get_settings()
    refusal = console_refusal(settings, listen_address(sys.argv[1:], Path.cwd()))
    if refusal:
        log.error("Error: %s", refusal)
        raise SystemExit(2)
    start = time.perf_counter()
    problems = warm(settings)
    log.info("console: loaded what its first page needs in %.1f s", time.perf_counter() - start)
    for problem in problems:
        log.warning("console: could not load %s (the page that needs it will say so)", problem)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:], *_secrets_flags(settings)]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
