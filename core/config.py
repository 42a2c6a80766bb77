"""One Settings object for every entry point (CLI, console, API, flows, DVC stages).

Read from the environment and an optional `.env` file in the working directory (the repository root
when run through the Makefile). Every default is the *embedded* mode: a fresh
clone runs with no services, no download and no `.env`. The full stack overrides the same fields.
Nothing here touches the disk or the network at import time; paths are only computed.
"""
# Size: every setting with its default and description, and every derived path: one place by design.

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Final, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Names written once and used everywhere.
REGISTERED_MODEL_NAME: Final = "rakuten-product-classifier"
CHAMPION_ALIAS: Final = "champion"
CHALLENGER_ALIAS: Final = "challenger"
EXPERIMENT_NAME: Final = "rakuten-product-classification"

ROLE_NAMES: Final = ("viewer", "reviewer", "operator", "admin")  # core.identity.roles.Role's values
# Refused outside local when they hold a placeholder.
_SECRETS: Final = (
    "api_admin_token",
    "console_admin_token",
    "token",
    "oidc_client_secret",
    "oidc_cookie_secret",
)
_PLACEHOLDER_SECRETS: Final = frozenset(
    {"changeme", "change-me", "changethis", "secret", "password", "admin", "mlflow", "minioadmin", ""}
)


def _project_root() -> Path:
    """The checkout this package lives in (editable install), else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def _env(name: str) -> AliasChoices:
    """Accept `RAKUTEN_<NAME>` and, where a tool has its own well-known variable, that one too."""
    return AliasChoices(f"RAKUTEN_{name}", name)


class Settings(BaseSettings):
    """Platform configuration. Environment variables use the `RAKUTEN_` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="RAKUTEN_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["local", "staging", "production"] = "local"

    # --- paths -------------------------------------------------------------------------------
    root: Path = Field(default_factory=_project_root)
    # Relative paths are under `root`.
    data_dir: Path = Field(default=Path("data/raw"), description="Raw challenge files as downloaded.")
    interim_dir: Path = Field(
        default=Path("data/interim"), description="Ingested tables + validation report."
    )
    processed_dir: Path = Field(default=Path("data/processed"), description="Features and batch predictions.")
    models_dir: Path = Field(
        default=Path("models"), description="The candidate, the served copy, run records."
    )
    reports_dir: Path = Field(default=Path("reports"), description="Evaluation and drift reports.")
    cache_dir: Path = Field(
        default=Path("data/cache"), description="Image features, text embeddings by content."
    )
    corrections_dir: Path = Field(
        default=Path("data/corrections"),
        description="Reviewed labels (labels.csv) and their photos: the overlay ingestion applies (DVC).",
    )
    review_inputs_dir: Path = Field(
        default=Path("data/review_inputs"),
        description="Photos of served predictions kept for review (by content hash).",
    )

    # --- demo data (used when the data directory holds no challenge files) ---------------------
    demo_rows: int = Field(default=3000, ge=50, le=500_000)
    demo_seed: int = 42
    demo_images: bool = True

    # --- ingestion ------------------------------------------------------------------------------
    image_check: Literal["decode", "exists", "none"] = Field(
        default="decode",
        description="decode: open every image; exists: only check the file is there; none: skip.",
    )
    workers: int = Field(default=0, ge=0, description="Worker processes for parallel work (0: all cores).")

    # --- scale-out -------------------------------------------------------------------------------
    dask_address: str | None = Field(
        default=None,
        description=(
            "A Dask scheduler (tcp://host:8786) that image encoding, text embedding, cross-validation and "
            "batch scoring fan out to; `local`: a temporary cluster of `workers` processes on this machine; "
            "unset: one machine, no Dask."
        ),
    )
    dask_connect_timeout_s: float = Field(default=10.0, gt=0, description="Reaching the Dask scheduler.")
    batch_chunk_rows: int = Field(
        default=20_000, ge=10, description="Products per batch-scoring task (bounds each worker's memory)."
    )

    # --- MLflow ----------------------------------------------------------------------------------
    mlflow_tracking_uri: str | None = Field(default=None, validation_alias=_env("MLFLOW_TRACKING_URI"))
    mlflow_artifact_location: str | None = None
    # A tracking server with sign-in (`python -m core mlflow-auth`): MLflow's own client variables name
    # this process's account; the server's administrator is the trainer's.
    mlflow_tracking_username: str | None = Field(
        default=None, validation_alias=_env("MLFLOW_TRACKING_USERNAME")
    )
    mlflow_tracking_password: SecretStr | None = Field(
        default=None, validation_alias=_env("MLFLOW_TRACKING_PASSWORD")
    )
    mlflow_reader_username: str = Field(
        default="reader",
        description="The server's read-only account (the API's), made by `mlflow-auth users`.",
    )
    mlflow_reader_password: SecretStr | None = None
    mlflow_auth_database_uri: SecretStr | None = Field(
        default=None, description="The server's users and permissions (SQLAlchemy URL; `mlflow-auth config`)."
    )
    mlflow_auth_config_path: Path | None = Field(
        default=None,
        validation_alias=_env("MLFLOW_AUTH_CONFIG_PATH"),
        description="Where `mlflow-auth config` writes the server's sign-in configuration.",
    )

    # --- Prefect, API, console -------------------------------------------------------------------
    prefect_api_url: str | None = Field(
        default=None,
        validation_alias=_env("PREFECT_API_URL"),
        description="A Prefect server of your own (unset: the local stack's, on prefect_port).",
    )
    prefect_port: int = Field(default=4200, ge=1, le=65535, description="The local stack's Prefect server.")
    console_port: int = Field(default=8501, ge=1, le=65535, description="The local stack's console.")
    api_url: str | None = Field(
        default=None, description="Prediction API the console calls (unset: it predicts in-process)."
    )
    api_admin_token: SecretStr | None = Field(
        default=None,
        description="Break-glass: a bearer token the API takes as an admin (audited as `break-glass`), for "
        "when the identity provider is down. Unset: none.",
    )
    console_admin_token: SecretStr | None = Field(
        default=None,
        description="Break-glass: entered on the console's sign-in screen, signs in as an admin (audited as "
        "`break-glass`) while the identity provider is down. Unset: none.",
    )
    token: SecretStr | None = Field(
        default=None,
        description="The credential this process presents (RAKUTEN_TOKEN): a service token or an access "
        "token; the CLI acts as its owner outside local, the console sends it to the API's admin routes.",
    )

    # --- identity: sign-in, roles, tokens, audit -------------------------------------------------------
    oidc_server_metadata_url: str | None = Field(
        default=None,
        description="The identity provider's discovery document (…/.well-known/openid-configuration). Set: "
        "the console requires sign-in and the API accepts the provider's access tokens.",
    )
    oidc_client_id: str | None = Field(default=None, description="The console's client id at the provider.")
    oidc_client_secret: SecretStr | None = Field(default=None, description="The console's client secret.")
    oidc_redirect_uri: str | None = Field(
        default=None,
        description="Where the provider sends people back: the console's address + /oauth2callback "
        "(default: http://localhost:<console_port>/oauth2callback).",
    )
    oidc_cookie_secret: SecretStr | None = Field(
        default=None, description="Signs the console's sign-in cookie (32+ random characters)."
    )
    oidc_roles_claim: str = Field(
        default="groups",
        description="The token claim holding the provider's group or role names (dotted for nested: "
        "realm_access.roles).",
    )
    oidc_role_map: dict[str, str] = Field(
        default_factory=lambda: {
            "rakuten-viewers": "viewer",
            "rakuten-reviewers": "reviewer",
            "rakuten-operators": "operator",
            "rakuten-admins": "admin",
        },
        description="Provider group/role name → role (viewer, reviewer, operator, admin), JSON.",
    )
    oidc_audience: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Audiences the API accepts in access tokens, comma-separated (default: the client id).",
    )
    oidc_issuer: str | None = Field(
        default=None, description="The issuer tokens must name (default: the discovery document's)."
    )
    oidc_timeout_s: float = Field(default=5.0, gt=0, description="Each call to the identity provider.")
    oidc_session_hours: float = Field(
        default=8.0,
        gt=0,
        description="A console sign-in lasts this long after the provider authenticated the person; then "
        "they sign in again, with the roles the provider gives them now.",
    )
    service_tokens_file: Path = Field(
        default=Path("secrets/service_tokens.json"),
        description="Named service tokens, stored hashed (`python -m core token create`); re-read on change.",
    )
    api_predict_requires_token: bool = Field(
        default=False,
        description="Public deployments: /predict* need a bearer token too (any role; viewers may predict).",
    )
    audit_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the audit trail (default: the inference log's database)."
    )

    # --- prediction service -----------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64, description="Uvicorn worker processes.")
    api_batch_processes: int | None = Field(
        default=None,
        ge=0,
        description="Extra processes per API worker scoring large batches (default: the idle cores shared "
        "among the workers, ≤ 4).",
    )
    api_cors_origins: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8501", "http://localhost:8501"],
        description="Browser origins allowed to call the API (the console's by default).",
    )
    api_max_text_chars: int = Field(default=10_000, ge=100, description="Per title or description.")
    api_max_batch: int = Field(default=1_000, ge=1, description="Products per batch request.")
    api_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="Whole request body.")
    api_max_image_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, description="One image upload.")
    api_max_image_pixels: int = Field(default=40_000_000, ge=10_000, description="Width × height.")
    api_alias_check_s: float = Field(
        default=10.0,
        ge=0,
        description="How often the API checks whether the champion alias moved (0: only on /admin/reload).",
    )
    prometheus_url: str | None = Field(
        default=None, description="Prometheus the console charts service metrics from (full stack)."
    )
    grafana_url: str | None = Field(default=None, description="Grafana, probed by the Service health page.")
    ui_links: dict[str, str] = Field(
        default_factory=dict,
        description="Browser URLs of the native UIs when they differ from the service URLs (JSON).",
    )
    inference_log_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the inference log (default: SQLite in data/inference.db).",
    )
    inference_log_retention_days: int = Field(default=30, ge=0, description="0 keeps every record.")

    # --- monitoring and retraining ----------------------------------------------------------------
    monitor_window_hours: int = Field(default=24, ge=1, description="Recent predictions monitoring reads.")
    monitor_window_rows: int | None = Field(
        default=None, ge=1, description="At most this many of the latest predictions (default: all)."
    )
    monitor_min_rows: int = Field(default=200, ge=1, description="Fewer recent predictions: no decision.")
    drift_reference_rows: int = Field(
        default=2_000, ge=50, description="Held-out training products scored for the drift reference."
    )
    drift_max_rows: int = Field(
        default=5_000, ge=100, description="Larger windows are sampled to this many rows (text drift cost)."
    )
    retrain_confidence_drop: float = Field(default=0.10, gt=0, le=1, description="Mean confidence fall.")
    retrain_drifted_share: float = Field(
        default=0.5, gt=0, le=1, description="Share of drifted columns that means drift (and a retrain)."
    )
    retrain_corrections: int = Field(
        default=50, ge=1, description="New corrections since the champion's training that call for a retrain."
    )

    # --- review -----------------------------------------------------------------------------------
    review_confidence: float = Field(
        default=0.5, gt=0, lt=1, description="Served answers less confident than this are queued for review."
    )
    review_keep_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of the other served predictions whose photo is kept too (reviewable later).",
    )

    @field_validator("oidc_audience", mode="before")
    @classmethod
    def _audiences(cls, value: object) -> object:
        """`rakuten-api` or `rakuten-api,console` as people type them; a JSON list too."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator(*_SECRETS, mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An empty value is no secret at all: how Compose keeps another service's secret from a
        container (`NAME: ""`) while `env_file` hands every `.env` variable to every one."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _derive_paths(self) -> Self:
        self.root = self.root.expanduser().resolve()
        for name in _DIRS:
            setattr(self, name, _resolve(getattr(self, name), self.root))
        if self.prefect_api_url and self.prefect_api_url.rstrip("/") == self._local_prefect_url:
            self.prefect_api_url = None  # the local stack's own server (its programs get it exported)
        self.dask_address = (self.dask_address or "").strip() or None
        if self.inference_log_url is None:
            self.inference_log_url = f"sqlite:///{self.root / 'data' / 'inference.db'}"
        if self.audit_url is None:
            self.audit_url = self.inference_log_url
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = f"sqlite:///{self.root / 'mlflow.db'}"
        if self.mlflow_artifact_location is None and not _is_remote(self.mlflow_tracking_uri):
            # A tracking server chooses (and serves) its own artifact root; a local default here would
            # make clients write artifacts to their own disk, out of the server's and other clients' reach.
            self.mlflow_artifact_location = (self.root / "mlartifacts").as_uri()
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.environment == "local":
            return self
        for name in _SECRETS:
            secret: SecretStr | None = getattr(self, name)
            if secret is not None and is_placeholder(secret.get_secret_value()):
                raise ValueError(
                    f"RAKUTEN_{name.upper()} is a placeholder: set a real secret outside local "
                    "development, or unset it (generate one: "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))').",
                )
        cookie = self.oidc_cookie_secret
        if self.sign_in and cookie is not None and len(cookie.get_secret_value()) < 32:
            raise ValueError("RAKUTEN_OIDC_COOKIE_SECRET must be at least 32 characters long.")
        return self

    @model_validator(mode="after")
    def _complete_sign_in(self) -> Self:
        if self.oidc_server_metadata_url and not self.oidc_client_id:
            raise ValueError(
                "RAKUTEN_OIDC_SERVER_METADATA_URL is set without RAKUTEN_OIDC_CLIENT_ID: sign-in needs both "
                "(and, for the console, RAKUTEN_OIDC_CLIENT_SECRET and RAKUTEN_OIDC_COOKIE_SECRET)."
            )
        unknown = sorted({r for r in self.oidc_role_map.values()} - set(ROLE_NAMES))
        if unknown:
            raise ValueError(
                f"RAKUTEN_OIDC_ROLE_MAP maps to unknown roles {unknown}: use {', '.join(ROLE_NAMES)}."
            )
        return self

    @property
    def sign_in(self) -> bool:
        """Whether people sign in through an identity provider (OpenID Connect)."""
        return bool(self.oidc_server_metadata_url and self.oidc_client_id)

    @property
    def sign_in_missing(self) -> list[str]:
        """The settings the console's sign-in still needs (empty: complete)."""
        needed = {
            "RAKUTEN_OIDC_SERVER_METADATA_URL": self.oidc_server_metadata_url,
            "RAKUTEN_OIDC_CLIENT_ID": self.oidc_client_id,
            "RAKUTEN_OIDC_CLIENT_SECRET": self.oidc_client_secret,
            "RAKUTEN_OIDC_COOKIE_SECRET": self.oidc_cookie_secret,
        }
        return [name for name, value in needed.items() if not value]

    @property
    def api_audiences(self) -> list[str]:
        """What the API accepts as an access token's audience."""
        return self.oidc_audience or ([self.oidc_client_id] if self.oidc_client_id else [])

    @property
    def console_redirect_uri(self) -> str:
        return self.oidc_redirect_uri or f"http://localhost:{self.console_port}/oauth2callback"

    # --- paths derived from the folders above: each written here once -------------------------------
    @property
    def features_dir(self) -> Path:
        """The feature set (`features` step)."""
        return self.processed_dir / "features"

    @property
    def candidate_dir(self) -> Path:
        """The model just trained, before evaluation (`train` step)."""
        return self.models_dir / "candidate"

    @property
    def evaluation_dir(self) -> Path:
        """The candidate's hold-out metrics, figures and behaviour checks (`evaluate` step)."""
        return self.reports_dir / "evaluation"

    @property
    def registry_outcome_file(self) -> Path:
        """What `evaluate` registered and decided (DVC's proxy for the champion)."""
        return self.reports_dir / "registry.json"

    @property
    def predictions_file(self) -> Path:
        """The champion's batch predictions of X_test, in the submission format (`predict` step)."""
        return self.processed_dir / "predictions.csv"

    @property
    def probabilities_file(self) -> Path:
        """The champion's class probabilities for X_test (`predict` step)."""
        return self.processed_dir / "probabilities.csv"

    @property
    def figures_dir(self) -> Path:
        """The evaluation's figures (per-class F1, confusion, calibration)."""
        return self.evaluation_dir / "figures"

    @property
    def behaviour_file(self) -> Path:
        """The behavioural checks' results (a DVC metric)."""
        return self.evaluation_dir / "behaviour.json"

    @property
    def image_cache_dir(self) -> Path:
        """Image features by content hash and encoder."""
        return self.cache_dir / "image_features"

    @property
    def embedding_cache_dir(self) -> Path:
        """Passage embeddings by content hash and text encoder."""
        return self.cache_dir / "text_embeddings"

    @property
    def registry_lock(self) -> Path:
        """Serialises alias moves (promote, roll back) between processes."""
        return self.models_dir / ".registry.lock"

    @property
    def served_model_dir(self) -> Path:
        """The API's local copy of the champion (survives a registry that is down)."""
        return self.models_dir / "serving"

    @property
    def launches_dir(self) -> Path:
        """Which run each retrain launch started (double-click guard)."""
        return self.models_dir / ".runs"

    @property
    def drift_dir(self) -> Path:
        """Evidently drift reports, their index and the reference cache."""
        return self.reports_dir / "evidently"

    @property
    def drift_reference_dir(self) -> Path:
        """The drift reference, cached per champion version."""
        return self.drift_dir / "reference"

    @property
    def drift_labels_dir(self) -> Path:
        """True classes of simulated traffic (`python -m core simulate`), for drift reports with accuracy."""
        return self.drift_dir / "labels"

    @property
    def corrections_file(self) -> Path:
        """The exported corrections ingestion applies over the raw labels (`python -m core review export`)."""
        return self.corrections_dir / "labels.csv"

    @property
    def label_issues_file(self) -> Path:
        """The last label-issue scan of the training data (`python -m core review scan`)."""
        return self.reports_dir / "review" / "label_issues.parquet"

    @property
    def prefect_home(self) -> Path:
        """The local stack's Prefect state (its server's database, profiles)."""
        return self.root / ".prefect"

    @property
    def stack_dir(self) -> Path:
        """The local stack's state: its supervisor's configuration, socket, PID file and logs."""
        return self.root / ".stack"

    @property
    def prefect_url(self) -> str:
        """The Prefect API every entry point talks to: the configured server, else the local stack's."""
        return self.prefect_api_url or self._local_prefect_url

    @property
    def _local_prefect_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def local_prefect(self) -> bool:
        """Whether Prefect is the local stack's own server (started by `python -m core up`)."""
        return self.prefect_api_url is None

    @property
    def params_file(self) -> Path:
        return self.root / "params.yaml"

    @property
    def mode(self) -> Literal["embedded", "connected"]:
        """`connected` when Prefect or MLflow are servers of your own; `embedded` on the local stack
        (whose console calls its own API: an `api_url` alone does not make it connected)."""
        connected = self.prefect_api_url or not str(self.mlflow_tracking_uri).startswith("sqlite")
        return "connected" if connected else "embedded"

    @property
    def batch_processes(self) -> int:
        if self.api_batch_processes is not None:
            return self.api_batch_processes
        # the idle cores shared among the API's workers; each process holds a model copy
        return max(0, min(4, ((os.cpu_count() or 1) - self.api_workers) // self.api_workers))

    @property
    def n_workers(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)


_DIRS: Final = (
    "data_dir",
    "interim_dir",
    "processed_dir",
    "models_dir",
    "reports_dir",
    "cache_dir",
    "corrections_dir",
    "review_inputs_dir",
    "service_tokens_file",
)


def is_placeholder(value: str) -> bool:
    """A value nobody should run with outside local development: empty, a well-known default, or one of
    `.env.example`'s `replace-with-…` placeholders."""
    return value.strip().lower() in _PLACEHOLDER_SECRETS or "replace-with" in value.lower()


def _resolve(value: Path, root: Path) -> Path:
    value = value.expanduser()
    return value if value.is_absolute() else (root / value)


def _is_remote(tracking_uri: str) -> bool:
    return tracking_uri.split(":", 1)[0].lower() in {"http", "https", "databricks"}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own `Settings(...)` instead)."""
    return Settings()
