"""Benchmark of the training pipeline (`make bench`): 85,000 text rows + 3,000 images, end to end.

Measures the whole `python -m core pipeline` in a subprocess (wall time, peak memory of the process tree
sampled every 0.1 s) on a cold and on a warm image-feature cache, with the committed params.yaml (every
view: the pretrained image encoder when the vision extra is installed), and scores against references
trained and evaluated on exactly the same rows: a word+char TF-IDF LinearSVC with its C tuned by
cross-validation, the seed-style TF-IDF + LogisticRegression, and the image view with the colour/edge
encoder instead of the pretrained one. Also the image encoder's own speed, cold and warm, projected to
the real download; and the sentence-embedding text view (off by default): its speed on the demo's
passages and on full-length ones, and what it adds on a 10,000-product demo project trained twice, with
and without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
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


def _baselines(raw: Path, split: pd.Series, seed: int) -> dict[str, Any]:
    """Seed-style TF-IDF 20k + LogisticRegression and the word+char LinearSVC (C tuned by 3-fold CV on
    up to 20,000 training rows) on raw title + description, fitted on the pipeline's training rows and
    scored on its hold-out."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GridSearchCV

    from core.models.difficulty import raw_text, reference_models

    x = pd.read_csv(raw / "X_train_update.csv", index_col=0, keep_default_na=False, na_values=[""])
    y = pd.read_csv(raw / "Y_train_CVw08PX.csv", index_col=0)["prdtypecode"]
    text = pd.Series(raw_text(x), index=x.index)
    tr, te = split.index[split == "train"], split.index[split == "holdout"]
    models = reference_models(seed)
    sample = pd.Index(np.random.default_rng(seed).permutation(tr.to_numpy())[:20_000])
    grid = GridSearchCV(
        models["svm"], {"linearsvc__C": [0.1, 0.25, 0.5, 1.0, 2.0]}, cv=3, scoring="f1_weighted"
    )
    grid.fit(text.loc[sample].to_numpy(), y.loc[sample].to_numpy())
    models["svm"].set_params(linearsvc__C=grid.best_params_["linearsvc__C"])
    scores: dict[str, Any] = {"svm_C": grid.best_params_["linearsvc__C"]}
    for name, model in models.items():
        model.fit(text.loc[tr].to_numpy(), y.loc[tr].to_numpy())
        pred = model.predict(text.loc[te].to_numpy())
        scores[name] = float(f1_score(y.loc[te].to_numpy(), pred, average="weighted"))
    return scores


def _image_encoders(root: Path, split: pd.Series, workers: int) -> dict[str, float]:
    """The image view (logistic regression, C searched by CV) on each encoder's features of the same
    training photos, scored on the same hold-out photos: weighted F1."""
    from core.features.cache import ImageFeatureCache
    from core.features.image import get_encoder
    from core.params import load_params

    params = load_params(root / "params.yaml")
    products = pd.read_parquet(root / "data/processed/features/products.parquet")
    photos = products[products["has_image"] & products.index.isin(split.index)]
    y = photos["prdtypecode"].astype(int).to_numpy()
    held = (split.loc[photos.index] == "holdout").to_numpy()
    out = {}
    for name in ("colour_edge", "efficientnet_lite0"):
        try:
            encoder = get_encoder(name)
        except Exception:  # the vision extra is not installed: only the light encoder is compared
            continue
        cache = ImageFeatureCache(root / "data/cache/image_features", encoder)
        features, ok = cache.features(photos["image_path"].astype(str).tolist(), workers=workers)
        out[name] = _image_view_f1(features, y, ~held & ok, held & ok, params)
    return out


def _photo_guard(root: Path, split: pd.Series, seed: int = 0) -> dict[str, float]:
    """The photo guard on the hold-out products with a photo: with their own photos (like the training
    ones) and with each photo swapped for a natural scene unlike every training photo — the share set
    aside, the fused weighted F1 with the guard on and off, and the text view's alone."""
    from sklearn.metrics import f1_score

    from core.data.demo.product_images import scene_jpeg
    from core.features.build import FeatureSet
    from core.io import load_model
    from core.models.train import classifier_file

    features = FeatureSet.load(root / "data/processed/features")
    classifier = load_model(classifier_file(root / "models/candidate"))
    held = features.rows(split.index[split == "holdout"])
    photos = held.rows(held.products.index[held.has_image])
    y = photos.labels
    rng = np.random.default_rng(seed)
    scenes, _ = classifier.encode_images([scene_jpeg(rng) for _ in range(len(y))])
    every = np.ones(len(y), dtype=bool)

    def f1(proba: np.ndarray) -> float:
        return float(f1_score(y, classifier.classes[proba.argmax(1)], average="weighted", zero_division=0))

    out: dict[str, float] = {"rows": float(len(y))}
    for name, image_features in (("own", photos.image_features), ("scene", scenes)):
        on = classifier.views(photos.products, image_features, every, embeddings=photos.embeddings)
        off = classifier.views(
            photos.products, image_features, every, embeddings=photos.embeddings, guard=False
        )
        set_aside = on.set_aside if on.set_aside is not None else np.zeros(len(y), dtype=bool)
        out |= {
            f"{name}_set_aside": float(set_aside.mean()),
            f"{name}_on": f1(on.fused),
            f"{name}_off": f1(off.fused),
        }
    text = classifier.views(photos.products, None, None, embeddings=photos.embeddings)
    out["text"] = f1(text.fused)
    return out


def _image_view_f1(x: np.ndarray, y: np.ndarray, fit: np.ndarray, test: np.ndarray, params: Any) -> float:
    from sklearn.metrics import f1_score

    from core.models.image import ImageModel
    from core.models.search import search_c

    model = ImageModel(params.image, np.unique(y), seed=params.seed)
    rows = np.flatnonzero(fit)

    def score(c: float, a: np.ndarray, b: np.ndarray) -> float:
        fitted = model.unfitted().set_params(logisticregression__C=c).fit(x[rows[a]], y[rows[a]])
        return float(f1_score(y[rows[b]], fitted.predict(x[rows[b]]), average="weighted"))

    best = search_c("image.C", params.image.C, y[rows], score, metric="weighted F1", seed=params.seed)
    model.pipeline.set_params(logisticregression__C=best.best).fit(x[rows], y[rows])
    pred = model.classes_[model.predict_proba(x[test]).argmax(1)]
    return float(f1_score(y[test], pred, average="weighted"))


def _encoder_speed(tmp: Path, workers: int, n: int = 600) -> dict[str, float] | None:
    """Photos per second of the pretrained encoder through the feature cache: cold (decode + network,
    `n` new 500×500 demo photos) and warm (the same photos again: hashing and lookup only)."""
    from core.features.cache import ImageFeatureCache
    from core.features.image import get_encoder

    try:
        encoder = get_encoder("efficientnet_lite0")
    except Exception:
        return None
    raw = tmp / "encoder-photos"
    write_demo(raw, DemoSpec(rows=n, test_rows=0, seed=99), workers=workers)
    paths = sorted(str(p) for p in (raw / "images" / "image_train").glob("*.jpg"))
    cache = ImageFeatureCache(tmp / "encoder-cache", encoder)
    start = time.perf_counter()
    cache.features(paths, workers=workers)
    cold = len(paths) / (time.perf_counter() - start)
    start = time.perf_counter()
    ImageFeatureCache(tmp / "encoder-cache", encoder).features(paths, workers=workers)
    warm = len(paths) / (time.perf_counter() - start)
    return {"cold": cold, "warm": warm, "photos": float(len(paths))}


def _embedding_speed(tmp: Path, n: int = 600) -> dict[str, float] | None:
    """Texts per second of the sentence encoder through its content cache: cold on `n` demo passages and
    on `n` full-length ones (every passage past the encoder's 128 tokens, as long real descriptions
    are), warm on the same passages again (hashing and lookup only)."""
    from core.features.sentence import TextEmbeddingCache, get_text_encoder
    from core.features.text import model_text

    try:
        encoder = get_text_encoder("e5_small", 128)
    except Exception:  # the embeddings extra is not installed
        return None
    raw = tmp / "embedding-texts"
    write_demo(raw, DemoSpec(rows=2 * n, test_rows=0, seed=98, images=False))
    x = pd.read_csv(raw / "X_train_update.csv", index_col=0, keep_default_na=False)
    passages = model_text(x)["passage"].tolist()
    short = passages[:n]
    long = [" ".join(passages[i : i + 6]) for i in range(n, 2 * n)]  # 6 demo passages: > 128 tokens
    encoder.warm()
    out: dict[str, float] = {"texts": float(n)}
    for name, texts in (("demo", short), ("long", long)):
        folder = tmp / f"embedding-cache-{name}"
        start = time.perf_counter()
        TextEmbeddingCache(folder, encoder).features(texts)
        out[name] = n / (time.perf_counter() - start)
        start = time.perf_counter()
        TextEmbeddingCache(folder, encoder).features(texts)
        out[f"{name}_warm"] = n / (time.perf_counter() - start)
    tokens = [len(ids) for ids in encoder.model().token_ids(short, 512)]  # type: ignore[attr-defined]
    out["demo_tokens"] = float(np.mean(tokens))
    return out


def _embedding_gain(tmp: Path, workers: int, rows: int = 10_000) -> dict[str, Any] | None:
    """The same 10,000-product demo project (images included) trained with the committed params.yaml
    and again with the sentence-embedding view on: hold-out metrics of both, and the second run's
    features step (texts embedded cold)."""
    from core.features.sentence import embeddings_installed

    if not embeddings_installed():
        return None
    raw = tmp / "embedding-raw"
    write_demo(raw, DemoSpec(rows=rows, seed=7), workers=workers)
    repo = Path(__file__).resolve().parents[1]
    out: dict[str, Any] = {}
    for name in ("off", "on"):
        root = tmp / f"embedding-{name}"
        root.mkdir()
        params = (repo / "params.yaml").read_text(encoding="utf-8")
        if name == "on":
            params = params.replace("  encoder: none ", "  encoder: e5_small ")
            if "encoder: e5_small" not in params:
                raise RuntimeError("params.yaml no longer has `embedding.encoder: none` to switch on")
        (root / "params.yaml").write_text(params, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
        env |= {"RAKUTEN_ROOT": str(root), "RAKUTEN_DATA_DIR": str(raw), "RAKUTEN_WORKERS": str(workers)}
        wall, _, _ = _run_measured([sys.executable, "-m", "core", "pipeline"], env, root)
        out[name] = json.loads((root / "reports/evaluation/metrics.json").read_text())
        out[f"{name}_wall"] = wall
    return out


def run(tmp: Path, workers: int, rows: int = 85_000, images: int = 3_000) -> list[Row]:
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
    second, peak2, _ = _run_measured(cmd, env, root)  # warm cache: what every retrain costs
    metrics = json.loads((root / "reports/evaluation/metrics.json").read_text())
    training = json.loads((root / "models/candidate/training.json").read_text())
    split = pd.read_parquet(root / "models/candidate/split.parquet")["part"]
    base = _baselines(raw, split, seed=0)
    encoders = _image_encoders(root, split, workers)
    speed = _encoder_speed(tmp, workers)
    text_speed = _embedding_speed(tmp)
    gain = _embedding_gain(tmp, workers)
    guard = _photo_guard(root, split)
    n_test = int((split == "holdout").sum())
    fused, text = metrics["weighted_f1"], metrics["tfidf_weighted_f1"]
    t = training["timings"]
    out: list[Row] = [
        (
            f"Pipeline, {rows:,} text rows + {images:,} images, cold image cache (ingest → predict)",
            f"{first:.0f} s",
            "—",
        ),
        ("Pipeline, same data, warm image cache (every view)", f"{second:.0f} s", "< 180 s"),
        ("Pipeline, peak memory of the whole process tree", f"{max(peak, peak2):,.0f} MiB", "< 6,144 MiB"),
        (
            f"Training time: vectorise / C search / cross-fit ({training['folds']} folds + refit) / stacking",
            " / ".join(f"{t[k]:.0f}" for k in ("text_vectorize_s", "search_s", "cross_fit_s", "stacking_s"))
            + " s",
            "—",
        ),
        ("Image encoder used by the pipeline", training["encoder"], "—"),
        (f"Weighted F1, fused (stacked) model, {n_test:,} hold-out rows", f"{fused:.4f}", "—"),
        ("Weighted F1, its own TF-IDF text view", f"{text:.4f}", "—"),
        (
            f"Weighted F1, word+char TF-IDF LinearSVC (C={base['svm_C']:g} by CV), same rows",
            f"{base['svm']:.4f}",
            "—",
        ),
        ("Weighted F1, seed-style TF-IDF 20k + LogisticRegression, same rows", f"{base['logreg']:.4f}", "—"),
        ("Fused ÷ its text view", f"{fused / text:.3f}×", "> 1"),
        ("Fused ÷ tuned word+char LinearSVC", f"{fused / base['svm']:.3f}×", "> 1"),
        (
            f"Fused on hold-out rows with a photo ({int(metrics.get('image_rows', 0)):,}) vs text view there",
            f"{metrics.get('fused_weighted_f1_image_rows', float('nan')):.4f} vs "
            f"{metrics.get('text_weighted_f1_image_rows', float('nan')):.4f}",
            "—",
        ),
        (
            "Calibration error (ECE): fused / text view / image view",
            " / ".join(f"{metrics.get(k, float('nan')):.3f}" for k in ("ece", "tfidf_ece", "image_ece")),
            "—",
        ),
    ]
    n_photos = int(guard["rows"])
    out += [
        (
            f"Photo guard: hold-out photos ({n_photos:,}, like the training ones) whose view abstains",
            f"{guard['own_set_aside']:.1%}",
            "< 2 %",
        ),
        (
            "Fused weighted F1 on those products, guard on / off",
            f"{guard['own_on']:.4f} / {guard['own_off']:.4f}",
            "on ≥ off − 0.005",
        ),
        (
            "Same products, each photo swapped for a natural scene unlike every training photo: abstains",
            f"{guard['scene_set_aside']:.1%}",
            "≈ 100 %",
        ),
        (
            "… fused weighted F1 guard on / off / text view alone",
            f"{guard['scene_on']:.4f} / {guard['scene_off']:.4f} / {guard['text']:.4f}",
            "on = text alone > off",
        ),
    ]
    if "colour_edge" in encoders:
        out.append(
            ("Image view alone, colour/edge encoder (hold-out photos)", f"{encoders['colour_edge']:.4f}", "—")
        )
    if "efficientnet_lite0" in encoders:
        ratio = encoders["efficientnet_lite0"] / encoders["colour_edge"]
        out.append(
            (
                "Image view alone, pretrained EfficientNet-Lite0 (same photos)",
                f"{encoders['efficientnet_lite0']:.4f} ({ratio:.2f}× colour/edge)",
                "well above colour/edge",
            )
        )
    if speed is not None:
        real = 84_916 + 13_812
        out += [
            (
                f"Image encoding, pretrained, cold cache ({speed['photos']:.0f} new photos, decode included)",
                f"{speed['cold']:.1f} photos/s → real download ({real:,} photos) "
                f"{real / speed['cold'] / 60:.0f} min",
                "≥ 15 photos/s",
            ),
            (
                "Image encoding, warm cache (hash + lookup)",
                f"{speed['warm']:,.0f} photos/s → real download {real / speed['warm']:.0f} s",
                "—",
            ),
        ]
    if text_speed is not None:
        real = 84_916 + 13_812
        n = int(text_speed["texts"])
        out += [
            (
                f"Text embedding (e5-small, 128 tokens), cold: {n} demo passages "
                f"(mean {text_speed['demo_tokens']:.0f} tokens)",
                f"{text_speed['demo']:.1f} texts/s",
                "≥ 25 texts/s",
            ),
            (
                f"Text embedding, cold: {n} full-length passages (past 128 tokens, as long real ones)",
                f"{text_speed['long']:.1f} texts/s → real download ({real:,} texts) "
                f"≤ {real / text_speed['long'] / 60:.0f} min",
                "≥ 25 texts/s",
            ),
            (
                "Text embedding, warm cache (hash + lookup)",
                f"{text_speed['long_warm']:,.0f} texts/s → real download "
                f"{real / text_speed['long_warm']:.0f} s",
                "—",
            ),
        ]
    if gain is not None:
        off, on = gain["off"], gain["on"]
        out += [
            (
                f"10,000-product project: fused weighted F1 without / with the embedding view "
                f"({int(on['rows']):,} hold-out rows)",
                f"{off['weighted_f1']:.4f} / {on['weighted_f1']:.4f} "
                f"({on['weighted_f1'] / off['weighted_f1']:.3f}×)",
                "—",
            ),
            (
                "Same project: TF-IDF view / embedding view alone",
                f"{on['tfidf_weighted_f1']:.4f} / {on.get('embedding_weighted_f1', float('nan')):.4f}",
                "—",
            ),
            (
                "Same project: pipeline without / with the view (texts embedded cold)",
                f"{gain['off_wall']:.0f} s / {gain['on_wall']:.0f} s",
                "—",
            ),
        ]
    return out
