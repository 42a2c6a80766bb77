"""Review and correct: how well the label-issue scan finds the demo's injected label noise, what
correcting the flagged rows does to the next model (weighted F1 on the hold-out scored against the
generator's true classes), the scan's speed at the real data's size, and the Review page per item.

The simulated reviewer is an oracle: shown a flagged row, it sets the product's true class (the
generator's, before noise) — a relabel when the label was wrong, a confirmation when it was right.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from core.config import Settings, get_settings
from core.data.demo.generator import DemoSpec, generate_tables, write_demo
from core.features.build import FeatureSet
from core.io import load_model
from core.models.train import FILES, classifier_file
from core.params import Params
from core.pipeline.steps import evaluate_step, features_step, ingest_step, train_step
from core.review.inbox import export, open_store
from core.review.label_issues import scan
from core.storage.corrections import Correction

Row = tuple[str, str, str]


def run(root: Path, workers: int, rows: int = 10_000) -> list[Row]:
    out: list[Row] = []
    settings = Settings(root=root / "project")
    spec = DemoSpec(rows=rows, seed=settings.demo_seed)
    write_demo(settings.data_dir, spec, workers=workers)
    tables = generate_tables(spec)
    truth = pd.Series(tables.true_train, index=tables.y_train.index)
    given = tables.y_train["prdtypecode"]
    params = Params()

    started = time.perf_counter()
    ingest_step(settings, workers=workers)
    features = features_step(settings, params, workers=workers)
    train_step(settings, params, workers=workers, features=features)
    train_s = time.perf_counter() - started
    before = _clean_holdout_f1(settings, features, truth)

    result = scan(settings, workers=workers)
    oof_ids = set(np.load(settings.candidate_dir / FILES["oof"])["ids"].tolist())
    noisy = set(given.index[given != truth]) & oof_ids
    flagged = result.issues[result.issues["reason"] == "label_issue"]["id"].tolist()
    top = flagged[: len(noisy)]
    precision = len(set(top) & noisy) / max(len(top), 1)
    recall = len(set(flagged) & noisy) / max(len(noisy), 1)
    out += [
        (
            f"Label-issue scan, {rows:,} demo rows: precision among the top {len(noisy)} "
            f"(= the injected noisy rows it could see)",
            f"{precision:.3f}",
            "≥ 0.6",
        ),
        (
            f"… all {len(flagged):,} flagged rows: precision / recall of the noise",
            f"{len(set(flagged) & noisy) / max(len(flagged), 1):.3f} / {recall:.3f}",
            "—",
        ),
    ]

    store = open_store(settings)
    store.add_many(
        [
            Correction.for_training(int(i), int(given[i]), int(truth[i]), "oracle", queue="label_issue")
            for i in top
        ]
    )
    export(settings, store)
    store.close()
    started = time.perf_counter()
    ingest_step(settings, workers=workers)
    features = features_step(settings, params, workers=workers)
    trained = train_step(settings, params, workers=workers, features=features)
    retrain_s = time.perf_counter() - started
    after = _clean_holdout_f1(settings, features, truth)
    evaluate_step(settings, params, features=features, trained=trained, actor="benchmark")  # the champion
    relabelled = sum(int(given[i] != truth[i]) for i in top)
    out += [
        (
            f"Weighted F1 on the clean hold-out, before → after correcting the top {len(top)} "
            f"({relabelled} relabelled, {len(top) - relabelled} confirmed)",
            f"{before:.4f} → {after:.4f} ({after - before:+.4f})",
            "after > before",
        ),
        (
            f"Train {rows:,} rows, then ingest + features + train again with the corrections",
            f"{train_s:.0f} s, {retrain_s:.0f} s",
            "—",
        ),
        (
            f"Label-issue scan of {rows:,} rows (out-of-fold probabilities, duplicates, file)",
            f"{result.meta['seconds']:.1f} s",
            "—",
        ),
    ]
    out += _scan_at_scale(root, settings, workers)
    out += _page(settings)
    return out


def _clean_holdout_f1(settings: Settings, features: FeatureSet, truth: pd.Series) -> float:
    """The candidate's weighted F1 on its hold-out, scored against the generator's true classes."""
    split = pd.read_parquet(settings.candidate_dir / FILES["split"])["part"]
    held = features.rows(split.index[split == "holdout"])
    held = held.rows(held.products.index[held.products.index.isin(truth.index)])
    classifier = load_model(classifier_file(settings.candidate_dir))
    proba = classifier.proba_from_features(held.products, held.image_features, held.has_image)
    predicted = classifier.classes[proba.argmax(axis=1)]
    return float(f1_score(truth.loc[held.products.index], predicted, average="weighted"))


def _scan_at_scale(root: Path, small: Settings, workers: int, rows: int = 85_000) -> list[Row]:
    """The whole scan (`core.review.label_issues.scan`: read, fuse, confident learning, duplicates, write)
    on the real download's size: an ingested 85,000-row table and out-of-fold probabilities of that many
    rows, resampled class by class from the small project's real ones (same shape and spread)."""
    settings = Settings(root=root / "big", image_check="none")
    write_demo(settings.data_dir, DemoSpec(rows=rows, images=False), workers=workers)
    ingest_step(settings, workers=workers)
    train = pd.read_parquet(settings.interim_dir / "train.parquet")
    oof = np.load(small.candidate_dir / FILES["oof"])
    labels = train["prdtypecode"].to_numpy()
    rng = np.random.default_rng(0)
    source = oof["labels"]
    pick = np.array([rng.choice(np.flatnonzero(source == c)) for c in labels])
    arrays: dict[str, Any] = {"ids": train["id"].to_numpy(), "labels": labels, "classes": oof["classes"]}
    for key in oof.files:
        if key.startswith(("proba_", "available_")):
            arrays[key] = oof[key][pick]
    settings.candidate_dir.mkdir(parents=True)
    np.savez_compressed(settings.candidate_dir / FILES["oof"], **arrays)
    shutil.copy(classifier_file(small.candidate_dir), settings.candidate_dir / FILES["classifier"])
    result = scan(settings, workers=workers)
    return [
        (
            f"Label-issue scan over {rows:,} products ({result.meta['label_issues']:,} flagged)",
            f"{result.meta['seconds']:.1f} s",
            "< 5 min",
        )
    ]


def _page(settings: Settings) -> list[Row]:
    """The Review page through Streamlit's AppTest on the trained project: first load of the training
    queue, then one decision after another (each records a correction and shows the next item, with
    the champion's top 5 and the n-grams behind its answer)."""
    from streamlit.testing.v1 import AppTest

    os.environ["RAKUTEN_ROOT"] = str(settings.root)
    get_settings.cache_clear()
    home = str(Path(__file__).resolve().parents[1] / "app" / "Home.py")
    at = AppTest.from_file(home, default_timeout=120).run()
    at.switch_page("../pages/review.py").run()
    at.session_state["review_kind"] = "training"
    at.session_state["reviewer"] = "bench"
    first = time.perf_counter()
    at.run()
    first_s = time.perf_counter() - first
    if not any("Top 5 of champion" in m.value for m in at.markdown):
        raise RuntimeError("The Review page shows no champion's view of the item: nothing measured.")
    per_item = []
    for _ in range(10):
        started = time.perf_counter()
        at.button(key="review_accept").click().run()
        per_item.append(time.perf_counter() - started)
        if at.exception or not any("Top 5 of champion" in m.value for m in at.markdown):
            raise RuntimeError(f"Review page failed: {at.exception}")
    return [
        ("Review page: first load of the training queue (champion loaded)", f"{first_s:.2f} s", "—"),
        (
            "Review page: next item (10 items: median / max)",
            f"{np.median(per_item):.2f} / {max(per_item):.2f} s",
            "< 2 s",
        ),
    ]
