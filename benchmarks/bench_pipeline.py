"""Benchmark of the training pipeline (`make bench`): 85,000 text rows + 3,000 images, end to end.

Measures the whole `python -m core pipeline` in a subprocess (wall time, peak memory of the process
tree sampled every 0.1 s), the bare vectorise+fit of the same text model on the same rows for the
overhead ratio, and two reference models trained and scored on exactly the same split.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from core.data.demo.generator import DemoSpec, write_demo

Row = tuple[str, str, str]


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _run_measured(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the whole process tree, and the command's output."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    watched = psutil.Process(proc.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak = max(peak, _tree_rss(watched))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out[-3000:]}")
    return wall, peak / 2**20, out


def _bare_fit(root: Path, workers: int) -> tuple[float, Any]:
    """Vectorise + fit of the pipeline's text model alone, on the same cleaned training rows."""
    from core.models.text import build_text_pipeline
    from core.params import load_params

    params = load_params(root / "params.yaml")
    products = pd.read_parquet(root / "data/processed/features/products.parquet")
    split = pd.read_parquet(root / "models/candidate/split.parquet")["part"]
    train = products.loc[split.index[split == "train"]]
    model = build_text_pipeline(params.text, n_jobs=min(workers, 3), seed=params.seed)
    start = time.perf_counter()
    model.fit(train[["title", "text"]], train["prdtypecode"].astype(int).to_numpy())
    return time.perf_counter() - start, split


def _baselines(raw: Path, split: pd.Series) -> dict[str, float]:
    """Seed-style TF-IDF 20k + LogisticRegression and word+char LinearSVC on raw title + description,
    trained on the pipeline's train rows and scored on its test rows."""
    from sklearn.metrics import f1_score

    from core.data.demo.difficulty import raw_text, reference_models

    x = pd.read_csv(raw / "X_train_update.csv", index_col=0, keep_default_na=False, na_values=[""])
    y = pd.read_csv(raw / "Y_train_CVw08PX.csv", index_col=0)["prdtypecode"]
    text = pd.Series(raw_text(x), index=x.index)
    tr, te = split.index[split == "train"], split.index[split == "test"]
    scores = {}
    for name, model in reference_models().items():
        model.fit(text.loc[tr].to_numpy(), y.loc[tr].to_numpy())
        pred = model.predict(text.loc[te].to_numpy())
        scores[name] = float(f1_score(y.loc[te].to_numpy(), pred, average="weighted"))
    return scores


def run(tmp: Path, workers: int, rows: int = 85_000, images: int = 3_000) -> list[Row]:
    import json

    raw = tmp / "pipeline-raw"
    root = tmp / "pipeline-project"
    root.mkdir()
    write_demo(raw, DemoSpec(rows=rows, image_rows=images), workers=workers)
    repo = Path(__file__).resolve().parents[1]
    (root / "params.yaml").write_bytes((repo / "params.yaml").read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env |= {"RAKUTEN_ROOT": str(root), "RAKUTEN_DATA_DIR": str(raw), "RAKUTEN_WORKERS": str(workers)}
    cmd = [sys.executable, "-m", "core", "pipeline"]
    first, peak, _ = _run_measured(cmd, env, root)
    metrics = json.loads((root / "reports/evaluation/metrics.json").read_text())
    second, peak2, _ = _run_measured(cmd, env, root)
    bare, split = _bare_fit(root, workers)
    base = _baselines(raw, split)
    n_test = int((split == "test").sum())
    ours = metrics["weighted_f1"]
    return [
        (
            f"Pipeline, {rows:,} text rows + {images:,} images, first run (ingest → predict)",
            f"{first:.0f} s",
            "< 180 s",
        ),
        ("Pipeline, peak memory of the whole process tree", f"{max(peak, peak2):,.0f} MiB", "< 4,096 MiB"),
        ("Pipeline, second run (images cached, champion re-scored)", f"{second:.0f} s", "—"),
        ("Bare vectorise + fit of the same text model", f"{bare:.0f} s", "—"),
        ("Pipeline overhead: first run ÷ bare vectorise + fit", f"{first / bare:.2f}×", "< 1.5×"),
        (f"Weighted F1, pipeline (fused), {n_test:,} hold-out rows", f"{ours:.4f}", "≥ SVM baseline"),
        ("Weighted F1, pipeline text model alone", f"{metrics['text_weighted_f1']:.4f}", "—"),
        ("Weighted F1, word(1–2)+char_wb(2–5) TF-IDF LinearSVC, same split", f"{base['svm']:.4f}", "—"),
        ("Weighted F1, seed-style TF-IDF 20k + LogisticRegression, same split", f"{base['logreg']:.4f}", "—"),
    ]
