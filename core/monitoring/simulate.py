"""Traffic simulation: replay held-back products (the challenge's test set, never trained on) against
the prediction service, optionally shifted, so drift can be produced, seen and tested.

Shifts (each a share of the products, 0 = off): **class mix** (products of a few classes only),
**new vocabulary** (titles of product types the catalogue never had), **darker images** (pixels
scaled down), **unfamiliar photos** (natural scenes instead of product photos: the photo guard's case),
**empty descriptions**. `shift_products` is pure; `replay` sends them with a few
concurrent clients and counts what came back.
"""
# Size: one story (pick held-back products, shift them, send or log them); each piece is small.

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

from core.config import Settings
from core.data.demo.product_images import scene_jpeg
from core.data.ingest import load_table
from core.errors import DataNotFoundError, RakutenError
from core.monitoring.drift import held_out_ids
from core.serving.client import ApiRejected
from core.serving.predictor import Product
from core.serving.records import records

if TYPE_CHECKING:
    from core.serving.client import Backend
    from core.serving.predictor import Product

# Product types absent from the 27 classes: titles a shifted catalogue would bring.
NEW_TITLES: Final = (
    "trottinette électrique pliable autonomie {n} km",
    "drone quadricoptère caméra 4K stabilisée {n} minutes de vol",
    "casque réalité virtuelle compatible smartphone modèle {n}",
    "imprimante 3D filament PLA plateau chauffant {n} mm",
    "montre connectée cardiofréquencemètre GPS étanche {n} m",
    "aspirateur robot laveur cartographie laser {n} Pa",
    "vélo d'appartement magnétique {n} niveaux de résistance",
    "enceinte bluetooth waterproof autonomie {n} heures",
    "friteuse sans huile digitale capacité {n} litres",
    "panneau solaire portable monocristallin {n} W",
)


@dataclass(frozen=True)
class Shift:
    class_mix: float = 0.0  # share of products drawn from `classes` only
    new_vocabulary: float = 0.0  # share of titles replaced by unseen product types
    darker: float = 0.0  # share of images darkened
    darker_factor: float = 0.45  # pixel scale of a darkened image
    empty_description: float = 0.0  # share of descriptions removed
    unfamiliar_photos: float = 0.0  # share of photos swapped for a scene unlike every product photo
    classes: tuple[int, ...] = (2583, 1560, 1300)  # the over-represented classes of `class_mix`

    def __post_init__(self) -> None:
        for name in ("class_mix", "new_vocabulary", "darker", "empty_description", "unfamiliar_photos"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a share between 0 and 1, not {value}")
        if not 0.0 < self.darker_factor <= 1.0:
            raise ValueError(f"darker_factor must be in (0, 1], not {self.darker_factor}")

    @property
    def active(self) -> bool:
        return any(
            (self.class_mix, self.new_vocabulary, self.darker, self.empty_description, self.unfamiliar_photos)
        )


def held_back_products(settings: Settings, *, labelled: bool = False) -> pd.DataFrame:
    """Products the model never trained on: the challenge's test set as ingested — or, `labelled`,
    the held-out training rows (the last training's hold-out) with their `label`."""

    split: Literal["train", "test"] = "train" if labelled else "test"
    try:
        table = load_table(settings.interim_dir, split)
    except DataNotFoundError:
        raise DataNotFoundError(
            f"No ingested {split} products in {settings.interim_dir}: run `python -m core prepare` first."
        ) from None
    if labelled:
        table = table.set_index("id").loc[held_out_ids(settings, table.set_index("id"))]
    if table.empty:
        raise DataNotFoundError(f"The ingested {split} set is empty: there is nothing to replay.")
    ok = table["image_status"].astype(str).eq("ok")
    out = pd.DataFrame(
        {
            "designation": table["designation"].fillna("").astype(str).to_numpy(),
            "description": table["description"].fillna("").astype(str).to_numpy(),
            "image_path": np.where(ok, table["image_path"].fillna("").astype(str), ""),
        }
    )
    if labelled:
        out["label"] = table["prdtypecode"].astype(int).to_numpy()
    return out


def shift_products(
    products: pd.DataFrame, shift: Shift, *, n: int, seed: int = 0, labels: pd.Series | None = None
) -> pd.DataFrame:
    """`n` products drawn from `products` (repeated only beyond its size), shifted as `shift` says.
    The `darker` column tells which images to darken when they are read. `labels` (product → class,
    when known) is needed for `class_mix`."""
    rng = np.random.default_rng(seed)
    if len(products) == 0:
        raise DataNotFoundError("No products to replay.")
    # each product once (in random order) before any repeats: repeated titles would look like drift
    rounds = -(-n // len(products))
    picks = np.concatenate([rng.permutation(len(products)) for _ in range(rounds)])[:n]
    if shift.class_mix and labels is not None:
        pool = np.flatnonzero(labels.reindex(products.index).isin(shift.classes).to_numpy())
        if len(pool):
            mixed = rng.random(n) < shift.class_mix
            picks[mixed] = rng.choice(pool, size=int(mixed.sum()))
    out = products.iloc[picks].reset_index(drop=True).copy()
    if shift.new_vocabulary:
        new = rng.random(n) < shift.new_vocabulary
        templates = rng.choice(len(NEW_TITLES), size=int(new.sum()))
        numbers = rng.integers(2, 60, size=len(templates))
        out.loc[new, "designation"] = [
            NEW_TITLES[t].format(n=int(v)) for t, v in zip(templates, numbers, strict=True)
        ]
    if shift.empty_description:
        out.loc[rng.random(n) < shift.empty_description, "description"] = ""
    out["darker"] = rng.random(n) < shift.darker if shift.darker else False
    # the scene's own seed, drawn here: the same replay sends the same scenes
    scene = rng.random(n) < shift.unfamiliar_photos if shift.unfamiliar_photos else np.zeros(n, dtype=bool)
    out["scene"] = np.where(scene, rng.integers(0, 2**31, size=n), -1)
    return out


def read_image(path: str, darker: bool, factor: float) -> bytes | None:
    """The image file's bytes, or a darkened JPEG of it; None without an image."""
    if not path:
        return None
    data = Path(path).read_bytes()
    if not darker:
        return data

    with Image.open(io.BytesIO(data)) as picture:
        dark = ImageEnhance.Brightness(picture.convert("RGB")).enhance(factor)
        out = io.BytesIO()
        dark.save(out, format="JPEG", quality=90)
    return out.getvalue()


def to_product(row: Any, shift: Shift, *, images: bool = True) -> Product:

    image = read_image(row.image_path, bool(row.darker), shift.darker_factor) if images else None
    if image is not None and getattr(row, "scene", -1) >= 0:
        image = scene_jpeg(np.random.default_rng(int(row.scene)))
    return Product(designation=row.designation or None, description=row.description, image=image)


@dataclass
class ReplayResult:
    sent: int = 0
    answered: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    versions: Counter[int] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def replay(
    backend: Backend,
    products: pd.DataFrame,
    shift: Shift,
    *,
    clients: int = 4,
    images: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> ReplayResult:
    """Send each product as its own request (text, image or both, as a shop would), `clients` at a
    time. A rejected or failed request is counted with its reason; the replay goes on."""

    result = ReplayResult()
    lock = threading.Lock()
    rows = list(products.itertuples(index=False))

    def send(row: Any) -> None:
        request_id = getattr(row, "request_id", None)
        try:
            outcome = backend.predict(to_product(row, shift, images=images), k=1, request_id=request_id)
        except (RakutenError, OSError) as exc:
            reason = f"{exc.status} {exc.reason}" if isinstance(exc, ApiRejected) else type(exc).__name__
            with lock:
                result.failed += 1
                result.errors[reason] += 1
        else:
            with lock:
                result.answered += 1
                result.versions[outcome.model_version] += 1
        with lock:
            result.sent += 1
            if progress:
                progress("requests", result.sent, len(rows))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, clients)) as pool:
        list(pool.map(send, rows))
    result.seconds = time.perf_counter() - start
    return result


def send_held_back(
    settings: Settings,
    backend: Backend,
    n: int,
    shift: Shift,
    *,
    seed: int = 0,
    labelled: bool = False,
    clients: int = 4,
    images: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[pd.DataFrame, ReplayResult]:
    """Replay `n` held-back products (shifted by `shift`) through `backend`: what was sent (with its
    request ids, and `label` when `labelled`) and what came back. A class mix draws from the held-out
    training rows, which have labels (the test set has none)."""
    products = held_back_products(settings, labelled=labelled or bool(shift.class_mix))
    sent = shift_products(products, shift, n=n, seed=seed, labels=products.get("label"))
    sent["request_id"] = request_ids(len(sent), seed)
    return sent, replay(backend, sent, shift, clients=clients, images=images, progress=progress)


def describe_shift(shift: Shift) -> str:
    parts = [
        f"{shift.class_mix:.0%} from classes {', '.join(map(str, shift.classes))}" if shift.class_mix else "",
        f"{shift.new_vocabulary:.0%} new-vocabulary titles" if shift.new_vocabulary else "",
        f"{shift.darker:.0%} images darkened ×{shift.darker_factor}" if shift.darker else "",
        f"{shift.empty_description:.0%} descriptions emptied" if shift.empty_description else "",
        f"{shift.unfamiliar_photos:.0%} photos swapped for natural scenes" if shift.unfamiliar_photos else "",
    ]
    text = ", ".join(p for p in parts if p)
    return text or "no shift"


def log_rows(
    products: Sequence[Product],
    answers: Sequence[Any],
    version: int | None,
    request_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Inference-log rows for products scored in this process (what the API would have logged): one
    request per product when `request_ids` are given, else one request for all."""

    if request_ids is None:
        logged = records("simulated", version, products, answers, 0.0, "sim")
    else:
        logged = [
            r
            for p, a, rid in zip(products, answers, request_ids, strict=True)
            for r in records("simulated", version, [p], [a], 0.0, rid)
        ]
    return pd.DataFrame([asdict(r) for r in logged])


def request_ids(n: int, seed: int) -> list[str]:
    """Distinct request ids for one replay (they tie labels to logged predictions)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return [f"sim-{stamp}-{seed}-{i:06d}" for i in range(n)]
