"""The served model and its hot swap.

`ModelHolder.current` is one immutable `ServedModel`; a request reads it once and finishes on that
object, so swapping the reference (a single assignment) never disturbs requests in flight. Loading
happens beside the serving — at start-up, on `/admin/reload`, or when the cheap alias check sees that
`champion` now points at another version — and only a fully loaded model is swapped in.

Every model loaded from the registry is also saved under `models/serving/`: if the registry cannot be
reached at start-up, the service starts on that local copy (and says so in `/model`).

A version whose files do not match the digests recorded at registration is refused before any of it
runs (`core.tracking.integrity`): the current model keeps serving, the refusal is reported
(`on_refused`), and the alias watcher does not try that version again — an operator's reload does.
"""
# Size: loading, hot swap, the local fallback copy and the champion watcher share one lock and state.

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from mlflow.exceptions import MlflowException

from core.config import CHAMPION_ALIAS, REGISTERED_MODEL_NAME, Settings
from core.errors import MissingExtraError, RakutenError
from core.features.image import get_encoder
from core.features.sentence import get_text_encoder
from core.features.text import normalize_text
from core.io import load_model, save_model, write_text
from core.models.classifier import ProductClassifier
from core.tracking.integrity import ModelIntegrityError, file_digest
from core.tracking.store import connect, load_classifier

log = logging.getLogger(__name__)

SERVED_METRICS: Final = ("weighted_f1", "macro_f1", "accuracy", "top5_accuracy")
Source = Literal["registry", "local"]
Outcome = Literal["swapped", "unchanged", "failed"]


class NoModelError(RakutenError):
    """No model is loaded (no champion yet, or the registry and the local copy are both unusable)."""


@dataclass(frozen=True)
class ModelRef:
    """Which registered version the champion alias points at, and what is known about it."""

    version: int
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ServedModel:
    classifier: ProductClassifier
    name: str
    version: int
    alias: str
    run_id: str | None
    metrics: dict[str, float]
    loaded_at: datetime
    source: Source
    file: Path | None = None  # this version's immutable local copy (what batch worker processes load)


@dataclass(frozen=True)
class Refusal:
    """A registered version this service refused to load (its files do not match their digests)."""

    version: int
    kind: Literal["mismatch", "missing"]  # missing: no digests recorded
    reason: str
    at: datetime


@dataclass(frozen=True)
class ReloadResult:
    outcome: Outcome
    version: int | None
    previous: int | None
    message: str


class RegistrySource:
    """Reads the champion from the MLflow registry (the only MLflow code the service runs)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def champion(self) -> ModelRef | None:
        client = connect(self.settings)
        try:
            mv = client.get_model_version_by_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                return None  # no registered model, or no champion alias yet
            raise
        metrics: dict[str, float] = {}
        if mv.run_id:
            run_metrics = client.get_run(mv.run_id).data.metrics
            metrics = {k: float(run_metrics[k]) for k in SERVED_METRICS if k in run_metrics}
        return ModelRef(int(mv.version), mv.run_id, metrics)

    def load(self, ref: ModelRef) -> ProductClassifier:
        classifier: ProductClassifier = load_classifier(self.settings, version=ref.version)
        return classifier


class ModelHolder:
    """The current `ServedModel` (or None) and the ways to replace it."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: RegistrySource | None = None,
        on_change: Callable[[ServedModel | None, ServedModel], None] = lambda old, new: None,
        on_refused: Callable[[Refusal], None] = lambda refusal: None,
    ) -> None:
        self.settings = settings
        self.source = source or RegistrySource(settings)
        self.local_dir = settings.served_model_dir
        self.on_change = on_change
        self.on_refused = on_refused
        self._current: ServedModel | None = None
        self._loading = threading.Lock()
        self.last_error: str | None = None
        self.refused: dict[int, Refusal] = {}  # by version, the latest refusal of each

    @property
    def current(self) -> ServedModel | None:
        return self._current

    def require(self) -> ServedModel:
        model = self._current
        if model is None:
            raise NoModelError(
                "No champion model is loaded"
                + (f" ({self.last_error})" if self.last_error else "")
                + ". Train and promote one (python -m core pipeline), then POST /admin/reload."
            )
        return model

    # --- loading -------------------------------------------------------------------------------
    def start(self) -> ServedModel | None:
        """Load the champion from the registry; fall back to the local copy if that fails."""
        result = self.reload()
        if result.outcome == "failed" and self._current is None:
            local = self._load_local()
            if local is not None:
                self._swap(local)
                log.warning(
                    "serving the local copy of v%s (%s): %s", local.version, self.local_dir, self.last_error
                )
        return self._current

    def reload(self) -> ReloadResult:
        """Swap to the version `champion` points at now, if it differs from the served one.

        Never raises: a failure leaves the current model serving and is reported in the result."""
        with self._loading:
            before = self._current
            previous = before.version if before else None
            try:
                ref = self.source.champion()
            except Exception as exc:  # registry down, network, permissions: keep serving
                return self._failed(previous, f"cannot read the registry: {exc}")
            if ref is None:
                self.last_error = "the registry has no champion yet"
                return ReloadResult("unchanged", previous, previous, self.last_error)
            if before is not None and before.version == ref.version and before.source == "registry":
                return ReloadResult("unchanged", previous, previous, f"v{previous} is the champion")
            try:
                classifier = self.source.load(ref)
            except ModelIntegrityError as exc:
                refusal = Refusal(ref.version, exc.kind, exc.reason, datetime.now(UTC))
                self.refused[ref.version] = refusal
                self.on_refused(refusal)
                return self._failed(previous, f"refused v{ref.version}: {exc.reason}")
            except Exception as exc:
                return self._failed(previous, f"cannot load v{ref.version}: {exc}")
            self.refused.pop(ref.version, None)
            model = ServedModel(
                classifier=classifier,
                name=REGISTERED_MODEL_NAME,
                version=ref.version,
                alias=CHAMPION_ALIAS,
                run_id=ref.run_id,
                metrics=ref.metrics,
                loaded_at=datetime.now(UTC),
                source="registry",
            )
            model = replace(model, file=self._save_local(model))  # before the swap: batches need it
            self._swap(model)
            self.last_error = None
            return ReloadResult("swapped", ref.version, previous, f"serving v{ref.version}")

    def champion_moved(self) -> bool:
        """The cheap alias check: does `champion` point elsewhere than what is served? (no loading)"""
        try:
            ref = self.source.champion()
        except Exception as exc:
            log.warning("alias check failed: %s", exc)
            return False
        served = self._current
        if ref is None or ref.version in self.refused:
            return False
        return served is None or served.version != ref.version or served.source != "registry"

    def _swap(self, model: ServedModel) -> None:
        _warm_encoder(model)  # a network loads its weights now, not on the first photo request
        old, self._current = self._current, model  # one reference assignment: atomic for readers
        self.on_change(old, model)

    def _failed(self, previous: int | None, message: str) -> ReloadResult:
        self.last_error = message
        log.error(
            "model reload failed, still serving %s: %s", f"v{previous}" if previous else "nothing", message
        )
        return ReloadResult("failed", previous, previous, message)

    # --- the local copy ------------------------------------------------------------------------
    # models/serving/v<N>/classifier.pkl (immutable once written) + served.json naming the latest.
    def _save_local(self, model: ServedModel) -> Path | None:
        target = self.local_dir / f"v{model.version}" / "classifier.pkl"
        try:
            if not target.is_file():  # another API worker (or an earlier start) may have saved it
                save_model(model.classifier, target)
            meta = {
                "name": model.name,
                "version": model.version,
                "alias": model.alias,
                "run_id": model.run_id,
                "metrics": model.metrics,
                "saved_at": datetime.now(UTC).isoformat(),
                "file": str(target.relative_to(self.local_dir)),
                "sha256": file_digest(target),  # checked before the copy is ever unpickled
            }
            write_text(self.local_dir / "served.json", json.dumps(meta, indent=2))
            self._prune_local(keep={target.parent.name, *self._in_use()})
        except (OSError, ValueError) as exc:
            log.warning("could not save the local copy in %s: %s", self.local_dir, exc)
            return None
        return target

    def _in_use(self) -> set[str]:
        current = self._current
        return {f"v{current.version}"} if current is not None else set()

    def _prune_local(self, keep: set[str]) -> None:
        for folder in self.local_dir.glob("v*"):
            if folder.is_dir() and folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)

    def _load_local(self) -> ServedModel | None:
        meta_file = self.local_dir / "served.json"
        if not meta_file.is_file():
            return None
        try:
            meta: dict[str, Any] = json.loads(meta_file.read_text())
            model_file = self.local_dir / str(meta["file"])
            if file_digest(model_file) != meta.get("sha256"):
                raise ValueError(f"{model_file.name} does not match the digest saved with it")
            classifier = load_model(model_file)
        except Exception as exc:  # a damaged copy must not stop the start-up
            log.error("local model copy in %s is unusable: %s", self.local_dir, exc)
            return None
        return ServedModel(
            classifier=classifier,
            name=str(meta["name"]),
            version=int(meta["version"]),
            alias=str(meta["alias"]),
            run_id=meta.get("run_id"),
            metrics={k: float(v) for k, v in meta.get("metrics", {}).items()},
            loaded_at=datetime.now(UTC),
            source="local",
            file=model_file,
        )


def _warm_encoder(model: ServedModel) -> None:
    """Load the encoders the model needs (a network's weights take a few seconds). Without the vision
    extra a pretrained image encoder cannot load: text is still served, photos get a 503 that names the
    install command; without the embeddings extra a model with a sentence-embedding view cannot answer
    (503 naming the command)."""
    normalize_text("é")  # text cleaning builds its accent table now, not on the first request
    embedding = model.classifier.embedding
    if embedding is not None:
        try:
            get_text_encoder(embedding.encoder, embedding.max_tokens).warm()
        except MissingExtraError as exc:
            log.error("v%s cannot answer here: %s", model.version, exc)
    try:
        encoder = get_encoder(model.classifier.encoder)
    except MissingExtraError as exc:
        log.error("v%s answers text only here: %s", model.version, exc)
        return
    warm = getattr(encoder, "warm", None)
    if callable(warm):
        warm()
