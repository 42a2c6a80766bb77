"""MLflow adapter: connection from Settings, experiment, and one call that records a training run.

The only module (with `core.tracking.registry`) that talks to MLflow. Tracking URI and artifact
location always come from Settings, so the console, API, flows and DVC stages share one store.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import EXPERIMENT_NAME, REGISTERED_MODEL_NAME, Settings
from core.errors import RakutenError

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


def connect(settings: Settings) -> Any:
    """Point MLflow at the configured store and return an `MlflowClient` (imports MLflow lazily)."""
    import mlflow
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # our own progress instead
    if settings.mlflow_s3_endpoint_url:
        # boto3, used by MLflow's S3 artifact store, reads this variable.
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = settings.mlflow_s3_endpoint_url
    uri = str(settings.mlflow_tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    from filelock import FileLock

    # Whoever opens a new SQLite store first creates and migrates its tables: two processes at once
    # (a flow run and the API's champion watcher) collide ("table _alembic_tmp_… already exists").
    # Both stores (tracking, registry) are opened under one lock beside the database.
    # Once this process has seen it set up, it stays so: later calls (the API's watcher, every few
    # seconds) neither lock nor query.
    if uri in _SET_UP:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    db = Path(uri.removeprefix("sqlite:///"))
    with FileLock(str(db.with_name(db.name + ".lock")), timeout=300):
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_registered_models(max_results=1)  # opens (and if need be sets up) the registry's
    _SET_UP.add(uri)
    return client


def check_tracking(settings: Settings, *, timeout: float = 2.0) -> None:
    """Fail fast (TrackingError) when a tracking *server* does not answer — MLflow's own client retries
    for minutes. A local store needs no check."""
    import httpx

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


def ensure_experiment(client: Any, settings: Settings, name: str = EXPERIMENT_NAME) -> str:
    """The experiment's id, creating it with the configured artifact location on first use."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(client.create_experiment(name, artifact_location=settings.mlflow_artifact_location))
    except MlflowException as exc:
        if "already exists" in str(exc).lower():  # created by a concurrent run
            return str(client.get_experiment_by_name(name).experiment_id)
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


def log_training_run(
    client: Any,
    settings: Settings,
    *,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifact_dirs: dict[str, Path],
    artifact_files: dict[str, Path],
    classifier_file: Path,
    registered_model: str = REGISTERED_MODEL_NAME,
) -> RunRecord:
    """One MLflow run with params, metrics, tags and artifacts; the model logged as pyfunc and
    registered as a new version of `registered_model`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from core.models import pyfunc

    experiment_id = ensure_experiment(client, settings)
    try:
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
            mlflow.log_metrics(metrics)
            for path, folder in artifact_dirs.items():
                mlflow.log_artifacts(str(folder), artifact_path=path)
            for path, file in artifact_files.items():
                mlflow.log_artifact(str(file), artifact_path=path)
            with warnings.catch_warnings():
                # No input_example on purpose: MLflow would reload and score the whole model to
                # validate it (~2 s per run); the signature documents the input, and the tests load
                # and score the registered model.
                warnings.filterwarnings("ignore", message=".*input example was not provided.*")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(pyfunc.MODEL_CODE),
                    artifacts={pyfunc.ARTIFACT: str(classifier_file)},
                    pip_requirements=pyfunc.pip_requirements(
                        str(params.get("model.encoder", "")), str(params.get("model.embedder", "none"))
                    ),
                    signature=pyfunc.signature(),
                )
            version = mlflow.register_model(
                info.model_uri, registered_model, tags={"run_id": run.info.run_id, **_lineage(tags)}
            )
    except MlflowException as exc:
        raise TrackingError(
            f"Could not record the run in MLflow ({settings.mlflow_tracking_uri}): {exc}"
        ) from exc
    log.info("run %s registered as %s v%s", run.info.run_id, registered_model, version.version)
    return RunRecord(run.info.run_id, info.model_uri, int(version.version), experiment_id)


def _lineage(tags: dict[str, str]) -> dict[str, str]:
    keep = ("git.commit", "git.dirty", "data.fingerprint", "data.rows")
    return {k: v for k, v in tags.items() if k in keep}


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."


def load_classifier(settings: Settings, *, version: int | None = None, alias: str | None = None) -> Any:
    """The `ProductClassifier` of a registered version (or alias), through its MLflow pyfunc."""
    import mlflow
    from mlflow.exceptions import MlflowException

    connect(settings)
    ref = f"@{alias}" if alias else f"/{version}"
    uri = f"models:/{REGISTERED_MODEL_NAME}{ref}"
    try:
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        raise TrackingError(f"Cannot load {uri} from {settings.mlflow_tracking_uri}: {exc}") from exc
    return model.unwrap_python_model().classifier
