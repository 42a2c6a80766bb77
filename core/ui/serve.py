"""`python -m core.ui.serve [streamlit run options]`: the console, with its heavy imports done before
it answers (what the local stack's `console` program runs).

A fresh Streamlit process imports pandas, Arrow, Plotly, MLflow, Prefect's client and the pipeline
the first time a page needs them — seconds, on the first page a user opens. Here they are imported
first, in the main thread, and only then does Streamlit start serving: the first page is as quick
as any later one. (`streamlit run app/Home.py` works as well; its first page is the slow one.)
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Final

APP: Final = Path(__file__).resolve().parents[2] / "app" / "Home.py"
# What the pages use, not the pages' own modules (Streamlit's caches are made inside its runtime)
PRELOAD: Final = (
    "pandas",
    "pyarrow",
    "plotly.express",
    "httpx",
    "mlflow",
    "prefect.client.orchestration",
    "core.orchestration.runs",
    "core.tracking.registry",
    "core.pipeline",
    "core.monitoring.drift",
    "core.monitoring.health",
    "core.data.ingest",
)


def main() -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
