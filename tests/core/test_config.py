"""Settings: embedded defaults on a fresh clone, environment overrides, refusal of placeholder secrets."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import REGISTERED_MODEL_NAME, Settings


def test_embedded_defaults_live_under_the_project_root(project: Path) -> None:
    s = Settings()
    assert s.root == project.resolve()
    assert s.data_dir == project / "data" / "raw"
    assert s.interim_dir == project / "data" / "interim"
    assert s.mlflow_tracking_uri == f"sqlite:///{project / 'mlflow.db'}"
    assert s.mlflow_artifact_location == (project / "mlartifacts").as_uri()
    assert s.prefect_api_url is None and s.api_url is None
    assert s.mode == "embedded"


def test_building_settings_touches_nothing_on_disk(project: Path) -> None:
    Settings()
    assert list(project.iterdir()) == []


def test_data_dir_from_environment_relative_or_absolute(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAKUTEN_DATA_DIR", "challenge")
    assert Settings().data_dir == project / "challenge"
    monkeypatch.setenv("RAKUTEN_DATA_DIR", "/srv/rakuten")
    assert Settings().data_dir == Path("/srv/rakuten")


def test_tool_variables_are_accepted_and_switch_to_connected_mode(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect:4200/api")
    s = Settings()
    assert s.mlflow_tracking_uri == "http://mlflow:5000"
    assert s.prefect_api_url == "http://prefect:4200/api"
    assert s.mode == "connected"


def test_dotenv_in_working_directory_is_read(project: Path) -> None:
    (project / ".env").write_text("RAKUTEN_DEMO_ROWS=1234\nRAKUTEN_API_URL=http://127.0.0.1:8000\n")
    s = Settings()
    assert s.demo_rows == 1234
    assert s.api_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize("token", ["changeme", "  ", "admin", "replace-with-a-generated-token"])
def test_placeholder_admin_token_refused_outside_local(
    project: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("RAKUTEN_ENVIRONMENT", "production")
    monkeypatch.setenv("RAKUTEN_API_ADMIN_TOKEN", token)
    with pytest.raises(ValidationError, match="RAKUTEN_API_ADMIN_TOKEN"):
        Settings()


def test_real_token_accepted_and_never_shown(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAKUTEN_ENVIRONMENT", "production")
    monkeypatch.setenv("RAKUTEN_API_ADMIN_TOKEN", "s3cr3t-t0ken-value")
    s = Settings()
    assert "s3cr3t" not in repr(s)
    assert s.api_admin_token is not None and s.api_admin_token.get_secret_value() == "s3cr3t-t0ken-value"


def test_invalid_values_are_rejected_with_the_field_name(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAKUTEN_IMAGE_CHECK", "sometimes")
    with pytest.raises(ValidationError, match="image_check"):
        Settings()


def test_names_are_written_once() -> None:
    assert REGISTERED_MODEL_NAME == "rakuten-product-classifier"


@pytest.mark.parametrize(
    "name", ["api_admin_token", "console_admin_token", "token", "oidc_client_secret", "oidc_cookie_secret"]
)
def test_a_placeholder_secret_is_refused_outside_local_naming_the_variable(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=f"RAKUTEN_{name.upper()} is a placeholder"):
        Settings(root=tmp_path, environment="production", **{name: "replace-with-x"})
    assert Settings(root=tmp_path, environment="local", **{name: "replace-with-x"}) is not None


def test_sign_in_needs_its_client_and_known_roles(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9400/.well-known/openid-configuration"
    with pytest.raises(ValueError, match="RAKUTEN_OIDC_CLIENT_ID"):
        Settings(root=tmp_path, oidc_server_metadata_url=url)
    with pytest.raises(ValueError, match="unknown roles"):
        Settings(root=tmp_path, oidc_role_map={"ops": "superuser"})
    s = Settings(root=tmp_path, oidc_server_metadata_url=url, oidc_client_id="console")
    assert s.sign_in and s.api_audiences == ["console"]
    assert s.sign_in_missing == ["RAKUTEN_OIDC_CLIENT_SECRET", "RAKUTEN_OIDC_COOKIE_SECRET"]
    with pytest.raises(ValueError, match="at least 32"):
        Settings(
            root=tmp_path,
            environment="production",
            oidc_server_metadata_url=url,
            oidc_client_id="console",
            oidc_cookie_secret="short-but-not-placeholder",
        )
    assert Settings(root=tmp_path).audit_url == Settings(root=tmp_path).inference_log_url


@pytest.mark.parametrize(
    ("cores", "workers", "expected"),
    [(2, 1, 1), (2, 2, 0), (8, 1, 4), (8, 2, 3), (8, 3, 1), (4, 8, 0)],
)
def test_batch_processes_share_the_cores_the_workers_leave_idle(
    project: Path, monkeypatch: pytest.MonkeyPatch, cores: int, workers: int, expected: int
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert Settings(api_workers=workers).batch_processes == expected
    assert Settings(api_workers=workers, api_batch_processes=2).batch_processes == 2  # as asked


def test_an_empty_secret_is_unset_not_a_placeholder(tmp_path: Path) -> None:
    """Compose blanks another service's secret with `NAME: ""`: that container runs without it."""
    s = Settings(root=tmp_path, environment="production", api_admin_token="", oidc_client_secret="")
    assert s.api_admin_token is None and s.oidc_client_secret is None
