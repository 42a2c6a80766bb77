"""Which secrets the full stack refuses outside local development, by name, and the fresh values it
suggests (`core.credentials`, `python -m core secrets`)."""

from __future__ import annotations

from core.credentials import SECRETS, enforced, generate, is_secret_name, refusals


def _fresh() -> dict[str, str]:
    values = {name: value or "rkt_" + "x" * 43 for name, value in generate().items()}
    return values | {"RAKUTEN_ENVIRONMENT": "production"}


def test_generated_values_pass_and_differ() -> None:
    fresh = _fresh()
    assert refusals(fresh) == {}
    assert len({fresh[s.name] for s in SECRETS if s.kind != "service_token"}) == len(SECRETS) - 1


def test_each_bad_value_is_refused_by_its_variable_s_name() -> None:
    bad = {
        "POSTGRES_PASSWORD": "replace-with-a-long-random-password",
        "GRAFANA_ADMIN_PASSWORD": "admin",
        "MINIO_ROOT_PASSWORD": "x" * 41,  # MinIO refuses it
        "RAKUTEN_OIDC_COOKIE_SECRET": "y" * 31,
        "KEYCLOAK_ADMIN_PASSWORD": "",
        "RAKUTEN_API_ADMIN_TOKEN": "changeme",  # optional, but not a placeholder when set
        "RAKUTEN_MLFLOW_TRACKING_PASSWORD": "pw-1234",  # not listed: named like a secret, checked alike
        "PREFECT_API_AUTH_STRING": "no-colon-but-long-enough",
    }
    found = refusals(_fresh() | bad)
    assert set(found) == set(bad)
    assert all(value not in " ".join(found.values()) for value in bad.values() if value)  # never echoed
    assert refusals({k: v for k, v in _fresh().items() if k != "KEYCLOAK_ADMIN_PASSWORD"}) == {
        "KEYCLOAK_ADMIN_PASSWORD": "is not set"
    }


def test_what_counts_as_a_secret_and_where_it_is_enforced() -> None:
    for name in (
        "POSTGRES_PASSWORD",
        "MINIO_API_SECRET_KEY",
        "CONSOLE_SERVICE_TOKEN",
        "PREFECT_API_AUTH_STRING",
    ):
        assert is_secret_name(name), name
    for name in ("MINIO_API_ACCESS_KEY", "GRAFANA_ADMIN_USER", "RAKUTEN_API_PREDICT_REQUIRES_TOKEN"):
        assert not is_secret_name(name), name
    assert refusals({"RAKUTEN_API_PREDICT_REQUIRES_TOKEN": "false", **_fresh()}) == {}
    assert not enforced({}) and not enforced({"RAKUTEN_ENVIRONMENT": "local"})
    assert enforced({"RAKUTEN_ENVIRONMENT": "production"}) and enforced({"RAKUTEN_ENVIRONMENT": "staging"})
