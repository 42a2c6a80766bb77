"""Benchmark of drift monitoring (`make bench`): how long a drift report takes on a real-sized window.

A 10,000-product demo project is trained by the real pipeline; 5,000 predictions are scored through
the API's own predict function and described as the inference log records them (once as they come,
once shifted: new-vocabulary titles, darker photos, emptied descriptions); then `run_drift` compares
each window with the 2,000-product reference (built once, then cached) — text drift included.
"""

from __future__ import annotations

import time
from pathlib import Path

Row = tuple[str, str, str]
WINDOW = 5_000


def run(tmp: Path, workers: int) -> list[Row]:
    from core.config import Settings
    from core.data.demo.generator import DemoSpec, write_demo
    from core.monitoring.drift import build_reference, run_drift
    from core.monitoring.simulate import Shift, held_back_products, log_rows, shift_products, to_product
    from core.params import Params
    from core.pipeline import run_pipeline
    from core.serving.predictor import ImageLimits, predict
    from core.tracking.store import load_classifier

    root = tmp / "project"
    write_demo(root / "data" / "raw", DemoSpec(rows=10_000, seed=5), workers=workers)
    settings = Settings(root=root, drift_max_rows=WINDOW)
    run_pipeline(settings, Params(), workers=workers)
    classifier = load_classifier(settings, alias="champion")

    start = time.perf_counter()
    reference = build_reference(settings, classifier, 1, rows=settings.drift_reference_rows)
    t_reference = time.perf_counter() - start

    products = held_back_products(settings)
    rows: list[Row] = [
        (
            f"Drift reference: {len(reference):,} held-out products scored with images (once per champion)",
            f"{t_reference:.1f} s",
            "—",
        ),
    ]
    shifted = Shift(new_vocabulary=0.5, darker=0.8, empty_description=0.7)
    for label, shift in (("as they come", Shift()), ("shifted", shifted)):
        sent = shift_products(products, shift, n=WINDOW, seed=2)
        batch = [to_product(row, shift) for row in sent.itertuples(index=False)]
        window = log_rows(batch, predict(classifier, batch, ImageLimits.of(settings), k=1), 1)
        start = time.perf_counter()
        summary = run_drift(settings, classifier, 1, current=window)
        took = time.perf_counter() - start
        html = settings.drift_dir / summary.html
        verdict = "drift" if summary.drift_detected else "no drift"
        rows.append(
            (
                f"Drift report, {WINDOW:,} predictions {label} vs the reference (text drift included)",
                f"{took:.1f} s — {verdict}, {summary.drifted_columns}/{summary.columns_compared} columns, "
                f"HTML {html.stat().st_size / 2**20:.1f} MiB",
                "< 30 s",
            ),
        )
    return rows
