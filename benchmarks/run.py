"""Benchmarks: `python benchmarks/run.py --output docs/benchmarks.md` (or `make bench`).

Measures what the platform promises — demo generation and ingestion speed, Data explorer
responsiveness on 85,000 rows, how hard the demo data is, and the training pipeline end to end
(`benchmarks/bench_pipeline.py`) and the prediction service against `mlflow models serve`
(`benchmarks/bench_serving.py`), how soon a Retrain shows progress (`benchmarks/bench_orchestration.py`),
how long a drift report takes (`benchmarks/bench_monitoring.py`) and how fast every console page
renders on 85,000 products after its first load (`benchmarks/bench_console.py`), and the local stack
as a new user meets it — first run, cold Overview, Retrain, stop (`benchmarks/bench_stack.py`),
and scale-out on Dask — a million products scored, photos encoded on 1 and 2 workers
(`benchmarks/bench_scaling.py`) — on this machine, and writes Markdown tables with the targets beside
the numbers. Everything runs in a temporary folder.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.data.demo.generator import DemoSpec, write_demo
from core.data.explore import add_search_columns, class_distribution, filter_products
from core.data.ingest import ingest, load_table

Row = tuple[str, str, str]


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _peak_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _full_scale(root: Path, workers: int) -> list[Row]:
    """The real download's size with images: 84,916 + 13,812 JPEGs written, then ingested."""
    t_gen, _ = _timed(lambda: write_demo(root / "full", DemoSpec(rows=84_916), workers=workers))
    t_ing, _ = _timed(lambda: ingest(root / "full", root / "full-out", image_check="decode", workers=workers))
    return [
        ("Demo data, 84,916 + 13,812 rows with images (real size)", f"{t_gen:.0f} s", "—"),
        (
            "Ingest the real-size set, every image decoded",
            f"{t_ing:.0f} s ({98_728 / t_ing:,.0f} rows/s)",
            "—",
        ),
    ]


SECTIONS = (
    "data",
    "pipeline",
    "serving",
    "orchestration",
    "monitoring",
    "review",
    "console",
    "stack",
    "scaling",
)
TITLES = {
    "data": "Data: demo generation, ingestion, explorer, difficulty",
    "pipeline": "Training pipeline",
    "serving": "Prediction service",
    "orchestration": "Orchestration",
    "monitoring": "Drift monitoring",
    "review": "Review and correct: label issues, corrections, the Review page",
    "console": "Operations console: every page",
    "stack": "The local stack (`make console`): first run, cold Overview, Retrain, stop",
    "scaling": "Scale-out on Dask: batch scoring of 1,000,000 products, image encoding on 1 and 2 workers",
}


def run(
    workers: int, quick: bool, full_scale: bool = False, sections: tuple[str, ...] = SECTIONS
) -> dict[str, list[Row]]:
    """Each requested section's rows."""
    out: dict[str, list[Row]] = {}
    if "data" in sections:
        out["data"] = _data(workers, quick, full_scale)
    for name in SECTIONS[1:]:  # "data" is measured above
        if name not in sections:
            continue
        module = importlib.import_module(f"bench_{name}")  # beside this script
        with tempfile.TemporaryDirectory() as tmp:
            extra = {"rows": 20_000 if quick else 85_000} if name in ("pipeline", "console") else {}
            if name == "review":
                extra = {"rows": 3_000 if quick else 10_000}
            if name == "scaling":
                extra = {"rows": 200_000 if quick else 1_000_000}
            out[name] = module.run(Path(tmp), workers, **extra)
    return out


def _data(workers: int, quick: bool, full_scale: bool) -> list[Row]:
    rows: list[Row] = []
    big = 20_000 if quick else 85_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t, _ = _timed(lambda: write_demo(root / "img", DemoSpec(rows=3000), workers=workers))
        rows.append(("Demo data, 3,000 rows with images", f"{t:.1f} s", "< 60 s"))
        t, _ = _timed(lambda: write_demo(root / "txt", DemoSpec(rows=big, images=False), workers=workers))
        rows.append((f"Demo data, {big:,} rows text-only", f"{t:.1f} s", "< 60 s"))

        t, _ = _timed(lambda: ingest(root / "img", root / "img-out", image_check="decode", workers=workers))
        rows.append(
            ("Ingest 3,000 + 488 rows, every image decoded", f"{t:.1f} s ({3488 / t:,.0f} rows/s)", "—")
        )
        t, _ = _timed(lambda: ingest(root / "txt", root / "txt-out", image_check="none", workers=workers))
        rows.append((f"Ingest {big:,} rows (text, no images)", f"{t:.1f} s", "—"))
        rows.append(("Peak memory of the process so far (generate + ingest)", f"{_peak_mib():.0f} MiB", "—"))
        if full_scale:
            rows += _full_scale(root, workers)

        t, table = _timed(lambda: add_search_columns(load_table(root / "txt-out", "train")))
        rows.append((f"Explorer: load + index {big:,} rows (cached after)", f"{t * 1000:.0f} ms", "—"))
        t, _ = _timed(lambda: filter_products(table, query="piscine bleu", codes=[2583, 2582]))
        rows.append((f"Explorer: search + class filter on {big:,} rows", f"{t * 1000:.0f} ms", "< 1 s"))
        t, _ = _timed(lambda: class_distribution(table))
        rows.append((f"Explorer: class distribution of {big:,} rows", f"{t * 1000:.0f} ms", "< 1 s"))

        rows += _console(root, big)

        from core.models.difficulty import image_score, text_scores

        scores = text_scores(*_xy(root / "txt", 20_000))
        rows.append(
            ("Difficulty: TF-IDF 20k + LogisticRegression (20k rows)", f"{scores['logreg']:.3f}", "0.70–0.85")
        )
        rows.append(
            ("Difficulty: word+char TF-IDF LinearSVC (20k rows)", f"{scores['svm']:.3f}", "≥ LR + 0.02")
        )
        if not quick:
            write_demo(root / "img20", DemoSpec(rows=20_000, test_rows=0), workers=workers)
            x, y = _xy(root / "img20", 20_000)
            score = image_score(x, y, root / "img20" / "images" / "image_train", workers=workers)
            rows.append(
                (
                    "Difficulty: image-only colour/edge LogisticRegression (20k)",
                    f"{score:.3f}",
                    "> 0.04, < text",
                )
            )
    return rows


def _console(root: Path, big: int) -> list[Row]:
    """Data explorer page through Streamlit's AppTest on the big table: first load, then a filter."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from core.config import get_settings

    project = root / "console"
    (project / "data").mkdir(parents=True)
    shutil.copytree(root / "txt-out", project / "data" / "interim")
    os.environ["RAKUTEN_ROOT"] = str(project)
    get_settings.cache_clear()
    home = str(Path(__file__).resolve().parents[1] / "app" / "Home.py")
    at = AppTest.from_file(home, default_timeout=120).run()
    first, _ = _timed(lambda: at.switch_page("../pages/data_explorer.py").run())
    again, _ = _timed(lambda: at.run())
    filtered, _ = _timed(lambda: at.multiselect(key="classes").set_value([2583]).run())
    if at.exception:
        raise RuntimeError(f"Data explorer failed: {at.exception}")
    n = len(at.dataframe(key="products").value)
    return [
        (f"Console: Data explorer, first render on {big:,} rows", f"{first:.2f} s", "—"),
        ("Console: Data explorer, rerun (cached)", f"{again:.2f} s", "< 2 s"),
        (f"Console: filter one class ({n:,} rows shown)", f"{filtered:.2f} s", "< 2 s"),
    ]


def _xy(folder: Path, n: int) -> tuple[Any, Any]:
    import pandas as pd

    x = pd.read_csv(folder / "X_train_update.csv", index_col=0, keep_default_na=False, na_values=[""]).head(n)
    y = pd.read_csv(folder / "Y_train_CVw08PX.csv", index_col=0)["prdtypecode"].head(n)
    return x, y


_BLOCK = re.compile(r"<!-- section: (\w+) -->\n.*?<!-- /section -->\n", re.S)


def render(results: dict[str, list[Row]], workers: int, previous: str = "") -> str:
    """The Markdown page: one table per section, stamped with when and where it ran. Sections not
    rerun this time keep their previous block (and stamp) from `previous`."""
    stamp = (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {os.cpu_count()} cores ({_cpu()}), "
        f"{workers} worker processes, Python {platform.python_version()}"
    )
    kept = {m.group(1): m.group(0) for m in _BLOCK.finditer(previous)}
    blocks = []
    for name in SECTIONS:
        if name in results:
            table = [f"| {a} | {b} | {c} |" for a, b, c in results[name]]
            lines = [
                f"<!-- section: {name} -->",
                f"## {TITLES[name]}",
                "",
                f"Measured {stamp}.",
                "",
                "| measurement | result | target |",
                "|---|---:|---|",
                *table,
                "<!-- /section -->",
            ]
            blocks.append("\n".join(lines) + "\n")
        elif name in kept:
            blocks.append(kept[name])
    head = (
        "# Benchmarks\n\nGenerated by `make bench` (all sections) or `python benchmarks/run.py --sections "
        "NAME` (one section; the others are kept). Difficulty rows are weighted F1 on a stratified "
        "80/20 split.\n"
    )
    return "\n".join([head, *blocks])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="20,000 rows instead of 85,000; no image model")
    parser.add_argument(
        "--full-scale", action="store_true", help="also write and ingest 98,728 images (~1 GB)"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="Comma-separated: data (foundation), pipeline (training), serving (API vs mlflow serve), "
        "orchestration (Retrain → first progress, local stack and server mode), monitoring (drift report), "
        "console (every console page: first load and after it), stack (make console: first run, cold "
        "Overview, Retrain, stop)",
    )
    args = parser.parse_args()
    sections = tuple(name.strip() for name in args.sections.split(","))
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    results = run(args.workers, args.quick, args.full_scale, sections)
    previous = args.output.read_text() if args.output.is_file() else ""
    text = render(results, args.workers, previous)
    from core import io

    io.write_text(args.output, text)
    print(text)


if __name__ == "__main__":
    main()
