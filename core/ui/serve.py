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
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Final

from core.config import Settings, get_settings
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


def main() -> None:
    missing = {k: v for k, v in CONSOLE_ENVIRONMENT.items() if k not in os.environ}
    if missing:  # a new process image with them (nothing to clean up: nothing was started yet)
        command = [sys.executable, "-m", "core.ui.serve", *sys.argv[1:]]
        os.execve(sys.executable, command, {**os.environ, **missing})
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    start = time.perf_counter()
    problems = warm(get_settings())
    log.info("console: loaded what its first page needs in %.1f s", time.perf_counter() - start)
    for problem in problems:
        log.warning("console: could not load %s (the page that needs it will say so)", problem)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
