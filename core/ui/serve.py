"""The console's process in the local stack: `python -m core.ui.serve run app/Home.py [options]`.

Streamlit runs every page's script in this one process, so a module imported here once is imported
for every page and every session. The modules the pages need (MLflow's client, Prefect's, pandas,
plotly, scikit-learn, the console's own pieces) are imported in a background thread while Streamlit
starts: the console answers as soon as Streamlit does, and a page opened a few seconds later no
longer waits for them. Otherwise it is Streamlit's own command line, with the arguments given.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import Final

WARM: Final = (
    "pandas",
    "plotly.express",
    "plotly.graph_objects",
    "sklearn.linear_model",
    "mlflow.tracking",
    "prefect.client.orchestration",
    "prefect.client.schemas.filters",
    "evidently",
    "core.ui.overview",
    "core.ui.runs",
    "core.ui.drift",
    "core.ui.predict",
    "core.ui.models",
    "core.ui.experiments",
    "core.ui.explorer",
    "core.ui.health",
    "core.tracking.registry",
    "core.tracking.store",
    "core.monitoring.drift",
    "core.orchestration.launcher",
)


def warm() -> None:
    """Import what the pages use; a module that fails to import is left to the page (which says why)."""
    for name in WARM:
        try:
            importlib.import_module(name)
        except Exception:  # a page reports its own import errors, with context
            continue


def main() -> None:
    from core.config import get_settings
    from core.orchestration.runs import configure_prefect

    configure_prefect(get_settings())  # Prefect reads its settings once, at its first import
    threading.Thread(target=warm, name="warm-imports", daemon=True).start()
    from streamlit.web.cli import main as streamlit

    sys.argv = ["streamlit", *sys.argv[1:]]
    streamlit()


if __name__ == "__main__":
    main()
