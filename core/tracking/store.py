"""MLflow adapter: connection from Settings, experiment, and one call that records a training run.

The only module (with `core.tracking.registry`) that talks to MLflow. Tracking URI and artifact
location always come from Settings, so the console, API, flows and DVC stages share one store.
"""
# Size: the one MLflow adapter for runs and models: connect, record and register a run, load a version.

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus, Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from core.config import EXPERIMENT_NAME, REGISTERED_MODEL_NAME, Settings
from core.errors import RakutenError
from core.tracking import integrity

log = logging.getLogger(__name__)
_SET_UP: set[str] = set()  # SQLite stores this process has opened under the lock (`connect`)


class TrackingError(RakutenError):
    """The MLflow tracking server or store cannot be used."""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    model_uri: str
    version: int
    experiment_id: str


def connect(settings: Settings) -> MlflowClient:
    """An `MlflowClient` of the store `settings` name. Nothing process-wide is set (no global tracking
    URI, no environment): every MLflow call here goes through a client made from Settings."""
    uri = str(settings.mlflow_tracking_uri)
    if not uri.startswith("sqlite:///") or uri in _SET_UP:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    # Whoever opens a new SQLite store first creates and migrates its tables: two processes at once
    # (a flow run and the API's champion watcher) collide ("table _alembic_tmp_… already exists").
    # Both stores (tracking, registry) are opened under one lock beside the database. Once this process
    # has seen it set up, it stays so: later calls (the API's watcher, every few seconds) neither lock
    # nor query.
    db = Path(uri.removeprefix("sqlite:///"))
    with FileLock(str(db.with_name(db.name + ".lock")), timeout=300):
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_registered_models(max_results=1)  # opens (and if need be sets up) the registry's
    _SET_UP.add(uri)
    return client


def check_tracking(settings: Settings, *, timeout: float = 2.0) -> None:
    """Fail fast (TrackingError) when a tracking *server* does not answer — MLflow's own client retries
    for minutes. A local store needs no check."""

    uri = str(settings.mlflow_tracking_uri)
    if not uri.startswith(("http://", "https://")):
        return
    fix = "start it (full stack: `docker compose up -d mlflow`) or check RAKUTEN_MLFLOW_TRACKING_URI"
    try:
        response = httpx.get(uri.rstrip("/") + "/health", timeout=timeout)
    except httpx.HTTPError as exc:
        raise TrackingError(f"The MLflow server at {uri} cannot be reached ({exc}): {fix}.") from exc
    if response.status_code >= 400:
        raise TrackingError(f"The MLflow server at {uri} answered {response.status_code}: {fix}.")


def ensure_experiment(client: MlflowClient, settings: Settings, name: str = EXPERIMENT_NAME) -> str:
    """The experiment's id, creating it with the configured artifact location on first use."""
    try:
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(client.create_experiment(name, artifact_location=settings.mlflow_artifact_location))
    except MlflowException as exc:
        created = client.get_experiment_by_name(name)  # by a concurrent run?
        if created is not None and "already exists" in str(exc).lower():
            return str(created.experiment_id)
        raise TrackingError(
            f"MLflow at {settings.mlflow_tracking_uri} refused the experiment: {exc}"
        ) from exc


def git_tags(cwd: Path) -> dict[str, str]:
    """Commit, branch and dirty state of the checkout (empty outside a git repository)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no") or ""
    return {
        "mlflow.source.git.commit": commit,
        "git.commit": commit,
        "git.branch": git("rev-parse", "--abbrev-ref", "HEAD") or "",
        "git.dirty": str(bool(status)).lower(),
    }


@dataclass(frozen=True)
class TrainingRun:
    """What one training run records: its name, params, metrics, tags, artifacts and the classifier."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifact_dirs: dict[str, Path]
    artifact_files: dict[str, Path]
    classifier_file: Path


def log_training_run(
    client: MlflowClient,
    settings: Settings,
    training: TrainingRun,
    registered_model: str = REGISTERED_MODEL_NAME,
) -> RunRecord:
    """One MLflow run with params, metrics, tags and artifacts; the model logged as a pyfunc (an MLflow
    logged model, output of the run) and registered as a new version of `registered_model`."""
    experiment_id = ensure_experiment(client, settings)
    try:
        run = client.create_run(experiment_id, run_name=training.name, tags=training.tags)
        run_id = run.info.run_id
        try:
            _log_values(client, run_id, training)
            for path, folder in training.artifact_dirs.items():
                client.log_artifacts(run_id, str(folder), artifact_path=path)
            for path, file in training.artifact_files.items():
                client.log_artifact(run_id, str(file), artifact_path=path)
            model = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
            client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / "model"
                _save_pyfunc(local, model, run_id, training.classifier_file, training.params)
                digests = integrity.encode(integrity.folder_digests(local))  # what loading will check
                client.log_model_artifacts(model.model_id, str(local))
            client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
            _ensure_registered_model(client, registered_model)
            version = client.create_model_version(
                registered_model,
                # the files themselves: MLflow's registry resolves a `models:/<id>` source through its
                # process-wide tracking URI, which is never set here
                source=model.artifact_location,
                run_id=run_id,
                tags={"run_id": run_id, integrity.DIGEST_TAG: digests, **_lineage(training.tags)},
                model_id=model.model_id,
            )
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
    except MlflowException as exc:
        raise TrackingError(
            f"Could not record the run in MLflow ({settings.mlflow_tracking_uri}): {exc}"
        ) from exc
    log.info("run %s registered as %s v%s", run_id, registered_model, version.version)
    return RunRecord(run_id, f"models:/{model.model_id}", int(version.version), experiment_id)


def _log_values(client: MlflowClient, run_id: str, training: TrainingRun) -> None:
    """Params and metrics in as few requests as MLflow's batch limits allow (100 params, 1,000 metrics)."""
    now = int(time.time() * 1000)
    params = [Param(k, _param(v)) for k, v in training.params.items()]
    metrics = [Metric(k, float(v), now, 0) for k, v in training.metrics.items()]
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start : start + 100])
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def _save_pyfunc(
    local: Path, model: LoggedModel, run_id: str, classifier: Path, params: dict[str, Any]
) -> None:
    """The classifier as an MLflow pyfunc model folder (code-based: `core/models/mlflow_model.py`)."""
    from core.models import pyfunc  # the model's code (scikit-learn: ~1 s), not for reading runs

    # No input_example on purpose: MLflow would reload and score the whole model to validate it (~2 s
    # per run); the signature documents the input, and the tests load and score the registered model.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        mlflow.pyfunc.save_model(
            str(local),
            python_model=str(pyfunc.MODEL_CODE),
            artifacts={pyfunc.ARTIFACT: str(classifier)},
            pip_requirements=pyfunc.pip_requirements(
                str(params.get("model.encoder", "")), str(params.get("model.embedder", "none"))
            ),
            signature=pyfunc.signature(),
            mlflow_model=Model(
                artifact_path=model.artifact_location,
                model_uuid=model.model_id,
                run_id=run_id,
                model_id=model.model_id,
            ),
        )


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _lineage(tags: dict[str, str]) -> dict[str, str]:
    keep = (
        "git.commit",
        "git.dirty",
        "data.fingerprint",
        "data.rows",
        "data.corrections",
        "data.corrections_sha256",
    )
    return {k: v for k, v in tags.items() if k in keep}


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."


def load_classifier(settings: Settings, *, version: int | None = None, alias: str | None = None) -> Any:
    """The `ProductClassifier` of a registered version (or alias), through its MLflow pyfunc — only once
    its files match the digests recorded at registration (`ModelIntegrityError` otherwise: nothing of
    it has run)."""
    client = connect(settings)
    ref = f"@{alias}" if alias else f"/{version}"
    try:
        if alias:
            mv = client.get_model_version_by_alias(REGISTERED_MODEL_NAME, alias)
        else:
            mv = client.get_model_version(REGISTERED_MODEL_NAME, str(version))
        location = client.get_model_version_download_uri(REGISTERED_MODEL_NAME, str(mv.version))
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=tmp, tracking_uri=str(settings.mlflow_tracking_uri)
            )
            integrity.verify(Path(local), (mv.tags or {}).get(integrity.DIGEST_TAG), int(mv.version))
            model = mlflow.pyfunc.load_model(local)  # the classifier is read into memory here
    except MlflowException as exc:
        raise TrackingError(
            f"Cannot load models:/{REGISTERED_MODEL_NAME}{ref} from {settings.mlflow_tracking_uri}: {exc}"
        ) from exc
    return model.unwrap_python_model().classifier
