"""Every route of the prediction API and every kind of bad input, through FastAPI's TestClient.

One app per module, serving the session's trained champion (v1) with small limits so each cap is
easy to cross; its inference log, audit trail, service tokens and local model copy live in the
module's own folder. Who may do what: a service token per role, the break-glass admin token, and the
identity provider's access tokens (signed here, its keys served by a real local HTTP server).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.config import Settings
from core.identity.roles import Role
from core.identity.service_tokens import create_token
from core.serving.app import create_app
from core.storage.audit import AuditFilter, AuditTrail
from core.storage.corrections import CorrectionsStore
from core.storage.inference_log import read_inference_log
from tests.core.serving.conftest import picture, product_photo, unfamiliar_photo
from tests.oidc_provider import claims, new_key, serving_keys

TOKEN = "test-admin-token-1234567890"  # break-glass: an admin
POOL = {"designation": "Piscine tubulaire Intex 366 x 122 cm", "description": "Avec pompe de filtration."}


@pytest.fixture(scope="module")
def settings(trained_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    here = tmp_path_factory.mktemp("api")
    return Settings(
        root=trained_source,
        models_dir=here / "models",
        reports_dir=here / "reports",
        inference_log_url=f"sqlite:///{here / 'inference.db'}",
        api_admin_token=TOKEN,  # type: ignore[arg-type]
        service_tokens_file=here / "secrets" / "service_tokens.json",
        review_inputs_dir=here / "review_inputs",
        review_confidence=0.99,  # every photo the demo model answers is kept: below 99 %
        api_alias_check_s=0,
        api_max_text_chars=500,
        api_max_batch=20,
        api_max_body_bytes=300_000,
        api_max_image_bytes=60_000,
        api_max_image_pixels=1_000_000,
    )


@pytest.fixture(scope="module")
def tokens(settings: Settings) -> dict[Role, str]:
    """One service token per role (made before the app starts, as `python -m core token create` does)."""
    return {
        role: create_token(settings.service_tokens_file, f"{role}-bot", [role])[0]
        for role in (Role.VIEWER, Role.REVIEWER, Role.OPERATOR)
    }


@pytest.fixture(scope="module")
def client(settings: Settings, tokens: dict[Role, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def trail(settings: Settings) -> AuditTrail:
    return AuditTrail.open(str(settings.audit_url))


def audited_since(trail: AuditTrail, last: int) -> list[dict[str, object]]:
    """The audit rows written after row `last`, oldest first."""
    frame = trail.read(AuditFilter())
    return frame[frame["id"] > last].sort_values("id").to_dict("records")


def last_row(trail: AuditTrail) -> int:
    frame = trail.read(AuditFilter(limit=1))
    return 0 if frame.empty else int(frame["id"].iloc[0])


def error_of(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"detail", "error", "request_id"}, body
    assert body["request_id"] == response.headers["x-request-id"]  # type: ignore[attr-defined]
    return str(body["error"])


# --- predictions -------------------------------------------------------------------------------------
def test_predict_text(client: TestClient) -> None:
    r = client.post("/predict", json=POOL, params={"k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == 1 and body["modalities"] == ["text"]
    assert len(body["top_k"]) == 3 and body["top_k"][0]["code"] == body["code"]
    assert body["category"] and 0 < body["probability"] <= 1
    assert body["request_id"] == r.headers["x-request-id"]


def test_client_request_id_is_kept(client: TestClient) -> None:
    r = client.post("/predict", json=POOL, headers={"X-Request-ID": "my-trace-42"})
    assert r.headers["x-request-id"] == "my-trace-42" == r.json()["request_id"]
    r = client.post("/predict", json=POOL, headers={"X-Request-ID": "bad id with spaces\n"})
    assert r.headers["x-request-id"] != "bad id with spaces\n" and len(r.headers["x-request-id"]) == 32


def test_predict_image(client: TestClient) -> None:
    r = client.post("/predict/image", files={"file": ("p.png", picture("PNG"), "image/png")})
    assert r.status_code == 200 and r.json()["modalities"] == ["image"]
    webp = picture("WEBP")
    r = client.post("/predict/image", files={"file": ("p.webp", webp, "application/octet-stream")})
    assert r.status_code == 200  # type sniffed from the bytes


def test_predict_product_fuses_text_and_image(client: TestClient) -> None:
    files = {"file": ("p.jpg", product_photo(), "image/jpeg")}
    r = client.post("/predict/product", data=POOL, files=files)
    assert r.status_code == 200 and r.json()["modalities"] == ["text", "image"]
    assert r.json()["photo"]["familiar"] and r.json()["photo"]["counted"]
    # Each view's own answer beside the fused one: what the title says, what the photo says.
    views = r.json()["views"]
    assert [v["view"] for v in views] == ["text", "image"]
    for view in views:
        assert len(view["top_k"]) == 3 and view["top_k"][0]["category"] and view["counted"]
        scores = [t["probability"] for t in view["top_k"]]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-9
    r = client.post("/predict/product", data={"designation": POOL["designation"]}, files={"x": ("", b"")})
    assert r.status_code == 200 and r.json()["modalities"] == ["text"]  # no image given
    r = client.post("/predict/product", data=POOL)  # URL-encoded: a form without a file
    assert r.status_code == 200 and r.json()["modalities"] == ["text"]


def test_a_photo_unlike_the_training_photos_leaves_the_answer_to_the_title(
    client: TestClient, settings: Settings
) -> None:
    text_only = client.post("/predict", json=POOL).json()
    abstained = 0
    for seed in range(5):
        files = {"file": ("scene.jpg", unfamiliar_photo(seed), "image/jpeg")}
        rid = {"X-Request-ID": f"scene-{seed}"}
        body = client.post("/predict/product", data=POOL, files=files, headers=rid).json()
        photo = body["photo"]
        assert photo["distance"] >= 0 and photo["threshold"] > 0
        if photo["familiar"]:
            continue
        abstained += 1
        assert not photo["counted"] and photo["distance"] > photo["threshold"]
        assert body["modalities"] == ["text"]
        assert [(v["view"], v["counted"]) for v in body["views"]] == [("text", True), ("image", False)]
        assert body["code"] == text_only["code"]
        assert [t["code"] for t in body["top_k"]] == [t["code"] for t in text_only["top_k"]]
        assert body["probability"] == pytest.approx(text_only["probability"])
    assert abstained >= 4
    # a photo alone has nothing to fall back on: the photo answers, flagged as unfamiliar
    alone = client.post("/predict/image", files={"file": ("scene.jpg", unfamiliar_photo(0), "image/jpeg")})
    assert alone.json()["modalities"] == ["image"] and alone.json()["photo"]["counted"]
    # live traffic shows it: counted by Prometheus, marked and kept in the log for review
    metrics = client.get("/metrics").text
    assert f'rakuten_photos_total{{familiar="false",route="product"}} {float(abstained)}' in metrics
    assert client.app.state.service.writer.flush()  # type: ignore[attr-defined]
    log = read_inference_log(settings).set_index("request_id")
    marked = log.loc[[f"scene-{seed}" for seed in range(5)]]
    assert int(marked["photo_unfamiliar"].sum()) == abstained
    assert marked.loc[marked["photo_unfamiliar"].astype(bool), "image_file"].notna().all()


def test_predict_batch_json_forms(client: TestClient) -> None:
    products = [{**POOL, "id": "a"}, {"designation": "Livre de poche", "id": 7}, {"designation": "Jeu PS4"}]
    for body in ({"products": products}, products):
        r = client.post("/predict/batch", json=body)
        assert r.status_code == 200
        out = r.json()
        assert out["count"] == 3 and [x["id"] for x in out["results"]] == ["a", 7, None]
    single = client.post("/predict", json=POOL).json()
    assert out["results"][0]["code"] == single["code"]
    assert out["results"][0]["probability"] == pytest.approx(single["probability"])


def test_predict_batch_csv_upload_and_body(client: TestClient) -> None:
    csv = b",designation,description,productid,imageid\n1,Piscine Intex,pompe,1,1\n2,Livre,,2,2\n"
    r = client.post("/predict/batch", files={"file": ("x_test.csv", csv, "text/csv")})
    assert r.status_code == 200 and [x["id"] for x in r.json()["results"]] == ["1", "2"]
    r = client.post("/predict/batch", content=csv, headers={"content-type": "text/csv"})
    assert r.status_code == 200 and r.json()["count"] == 2


# --- service routes ------------------------------------------------------------------------------------
def test_health_ready_model(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "model_version": 1, "detail": None}
    info = client.get("/model").json()
    assert info["name"] == "rakuten-product-classifier" and info["version"] == 1
    assert info["alias"] == "champion" and info["source"] == "registry" and info["classes"] == 27
    assert info["run_id"] and 0 < info["metrics"]["weighted_f1"] <= 1 and info["loaded_at"]


def test_openapi_documents_every_route_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in (
        "/predict",
        "/predict/image",
        "/predict/product",
        "/predict/batch",
        "/health",
        "/ready",
        "/model",
        "/admin/reload",
        "/metrics",
        "/feedback",
    ):
        assert path in schema["paths"], path
    batch = schema["paths"]["/predict/batch"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data", "text/csv"} <= set(batch)
    assert schema["components"]["schemas"]["ProductText"]["examples"][0]["designation"]
    assert "413" in schema["paths"]["/predict"]["post"]["responses"]
    for path in ("/feedback", "/admin/reload"):  # how to authenticate, and what is refused how
        operation = schema["paths"][path]["post"]
        assert "a service token or the identity provider's access token" in operation["description"]
        assert "REVIEW_TOKEN" not in json.dumps(operation)
        assert {"401", "403"} <= set(operation["responses"])
    assert "reviewer role" in schema["paths"]["/feedback"]["post"]["description"]
    assert "operator role" in schema["paths"]["/admin/reload"]["post"]["description"]


@pytest.mark.parametrize(("page", "assets"), [("/docs", 2), ("/redoc", 1)])
def test_the_docs_load_nothing_from_the_internet(client: TestClient, page: str, assets: int) -> None:
    """Swagger UI and ReDoc come with the service (a machine with no internet shows them too)."""
    html = client.get(page)
    assert html.status_code == 200 and "/openapi.json" in html.text
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
    assert not [u for u in urls if "//" in u], urls  # no absolute URL: every asset is this service's
    scripts = [u for u in urls if u.endswith(".js")]
    styles = [u for u in urls if u.endswith(".css")]
    assert len(scripts) + len(styles) == assets, urls
    for url in scripts + styles:
        r = client.get(url)
        kind = "javascript" if url.endswith(".js") else "css"
        assert r.status_code == 200 and kind in r.headers["content-type"], (url, r.headers)
        assert len(r.content) > 10_000, url


def test_cors_allows_the_console_only(client: TestClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = client.options("/predict", headers={"Origin": "http://127.0.0.1:8501", **preflight})
    assert ok.headers["access-control-allow-origin"] == "http://127.0.0.1:8501"
    other = client.options("/predict", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


# --- admin -------------------------------------------------------------------------------------------
def test_admin_reload_401_without_a_valid_credential_403_without_the_role(
    client: TestClient, tokens: dict[Role, str]
) -> None:
    for headers, reason in (
        ({}, "unauthenticated"),
        ({"Authorization": f"Basic {TOKEN}"}, "unauthenticated"),
        (bearer("wrong-token"), "invalid_token"),  # neither a service token nor an access token
        (bearer("rkt_revoked-or-never-made"), "invalid_token"),
        (bearer("aaaa.bbbb.cccc"), "sign_in_not_configured"),  # an access token, with no provider here
    ):
        r = client.post("/admin/reload", headers=headers)
        assert r.status_code == 401 and error_of(r) == reason, (headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert "Traceback" not in r.text
    assert "Authorization: Bearer" in client.post("/admin/reload").json()["detail"]
    for role in (Role.VIEWER, Role.REVIEWER):
        r = client.post("/admin/reload", headers=bearer(tokens[role]))
        assert r.status_code == 403 and error_of(r) == "forbidden", r.text
        assert r.json()["detail"].startswith(f"service:{role}-bot ({role}) may not reload the served model")
        assert "needs the operator role" in r.json()["detail"]
    unchanged = {"outcome": "unchanged", "version": 1, "previous": 1, "detail": "v1 is the champion"}
    for admin in (tokens[Role.OPERATOR], TOKEN):  # an operator, and the break-glass admin token
        r = client.post("/admin/reload", headers=bearer(admin))
        assert r.status_code == 200 and r.json() == unchanged


def test_every_reload_and_refusal_is_audited_once_and_counted(
    client: TestClient, tokens: dict[Role, str], trail: AuditTrail
) -> None:
    last = last_row(trail)
    client.post("/admin/reload")
    client.post("/admin/reload", headers=bearer("rkt_not-a-token"))
    client.post("/admin/reload", headers=bearer(tokens[Role.VIEWER]))
    assert client.post("/admin/reload", headers=bearer(tokens[Role.OPERATOR])).status_code == 200
    rows = audited_since(trail, last)
    assert [(r["actor"], r["outcome"]) for r in rows] == [
        ("anonymous", "refused"),
        ("anonymous", "refused"),
        ("service:viewer-bot", "refused"),
        ("service:operator-bot", "done"),
    ]
    assert {(r["action"], r["target"], r["entry"], r["origin"]) for r in rows} == {
        ("reload", "model:champion", "api", "testclient")  # origin: the client's address
    }
    assert [r["detail"] for r in rows[:2]] == ["unauthenticated", "invalid_token"]
    assert "needs the operator role" in str(rows[2]["detail"]) and rows[2]["roles"] == "viewer"
    done = rows[3]
    assert (done["roles"], done["via"]) == ("operator", "service-token")
    assert done["detail"] == "unchanged: serving v1 (before: v1)"
    metrics = client.get("/metrics").text
    for reason in ("unauthenticated", "invalid_token", "forbidden"):
        assert f'rakuten_auth_refusals_total{{reason="{reason}",route="/admin/reload"}}' in metrics


def test_nothing_is_accepted_until_a_credential_is_configured(trained_source: Path, tmp_path: Path) -> None:
    settings = Settings(
        root=trained_source,
        models_dir=tmp_path,
        inference_log_url=f"sqlite:///{tmp_path}/l.db",
        service_tokens_file=tmp_path / "no-tokens.json",
        api_alias_check_s=0,
    )
    with TestClient(create_app(settings)) as c:
        for route, body in (("/admin/reload", None), ("/feedback", {"request_id": "x", "true_code": 10})):
            r = c.post(route, json=body, headers=bearer("anything"))
            assert r.status_code == 401 and error_of(r) == "auth_not_configured"
            assert "python -m core token create" in r.json()["detail"]
            assert "RAKUTEN_API_ADMIN_TOKEN" in r.json()["detail"]
        assert c.post("/predict", json=POOL).status_code == 200  # predictions need no token by default


# --- tokens for predictions; the identity provider's access tokens -----------------------------------
def test_a_deployment_may_require_a_token_to_predict_and_take_the_provider_s_tokens(
    settings: Settings, tokens: dict[Role, str], trail: AuditTrail
) -> None:
    """With RAKUTEN_API_PREDICT_REQUIRES_TOKEN every /predict* route needs a valid credential (any
    role: viewers predict); its refusals are counted, not audited. With an identity provider
    configured, its access tokens work too: their groups give the roles."""
    key, now = new_key("api-test-key"), int(time.time())
    with serving_keys(key) as idp:
        locked = settings.model_copy(
            update={
                "api_predict_requires_token": True,
                "oidc_server_metadata_url": idp.metadata_url,
                "oidc_client_id": "rakuten-console",
            }
        )
        last = last_row(trail)
        with TestClient(create_app(locked)) as c:
            calls: dict[str, dict[str, Any]] = {
                "/predict": {"json": POOL},
                "/predict/image": {"files": {"file": ("p.png", picture("PNG"), "image/png")}},
                "/predict/product": {"data": POOL},
                "/predict/batch": {"json": [POOL]},
            }
            for route, kwargs in calls.items():
                r = c.post(route, **kwargs)
                assert r.status_code == 401 and error_of(r) == "unauthenticated", (route, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
                assert c.post(route, headers=bearer(tokens[Role.VIEWER]), **kwargs).status_code == 200, route
            signed = {
                "no mapped group": key.sign(claims(idp.url, "rakuten-console", groups=["marketing"])),
                "expired": key.sign(claims(idp.url, "rakuten-console", iat=now - 3600, exp=now - 120)),
                "another audience": key.sign(claims(idp.url, "another-client")),
                "operator": key.sign(
                    claims(idp.url, "rakuten-console", email="olga@example.org", groups=["rakuten-operators"])
                ),
            }
            r = c.post("/predict", json=POOL, headers=bearer(signed["no mapped group"]))
            assert r.status_code == 403 and error_of(r) == "forbidden"
            assert r.json()["detail"].startswith("bob@example.org (no role) may not predict")
            for case, reason in (("expired", "token_expired"), ("another audience", "wrong_audience")):
                r = c.post("/predict", json=POOL, headers=bearer(signed[case]))
                assert r.status_code == 401 and error_of(r) == reason, case
            assert c.post("/predict", json=POOL, headers=bearer(signed["operator"])).status_code == 200
            assert c.post("/admin/reload", headers=bearer(signed["operator"])).status_code == 200
            metrics = c.get("/metrics").text
        assert 'rakuten_auth_refusals_total{reason="unauthenticated",route="/predict/batch"} 1.0' in metrics
        assert 'rakuten_auth_refusals_total{reason="forbidden",route="/predict"} 1.0' in metrics
        assert 'rakuten_auth_refusals_total{reason="token_expired",route="/predict"} 1.0' in metrics
    rows = audited_since(trail, last)  # predictions are not audited; the reload is, by the person's name
    assert [(r["actor"], r["roles"], r["via"], r["action"], r["outcome"]) for r in rows] == [
        ("olga@example.org", "operator", "oidc", "reload", "done")
    ]


def test_predictions_need_no_token_by_default(client: TestClient) -> None:
    assert client.post("/predict", json=POOL).status_code == 200
    r = client.post("/predict", json=POOL, headers=bearer("rkt_not-checked-here"))
    assert r.status_code == 200  # not looked at: predictions are open


# --- review feedback ----------------------------------------------------------------------------------
def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def other_code(code: int) -> int:
    return 10 if code != 10 else 40


def test_feedback_records_a_correction_with_what_the_log_kept(
    client: TestClient, settings: Settings, tokens: dict[Role, str], trail: AuditTrail
) -> None:
    files = {"file": ("p.jpg", picture(), "image/jpeg")}
    served = client.post("/predict/product", data=POOL, files=files, headers={"X-Request-ID": "fb-ok"}).json()
    wrong = other_code(served["code"])
    last = last_row(trail)
    # Sent at once: the log is written in the background, the route waits for it when it must. A review
    # tool's service token names the person it sends the correction for.
    body = {"request_id": "fb-ok", "true_code": wrong, "reviewer": "alice", "note": "a pool, not a toy"}
    r = client.post("/feedback", json=body, headers=bearer(tokens[Role.REVIEWER]))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["correction_id"] >= 1 and out["verdict"] == "relabel"
    assert (out["request_id"], out["item"], out["predicted_code"], out["true_code"]) == (
        "fb-ok",
        0,
        served["code"],
        wrong,
    )
    logged = read_inference_log(settings).set_index("request_id").loc["fb-ok"]
    store = CorrectionsStore.open(str(settings.inference_log_url))
    try:
        row = store.table().set_index("id").loc[out["correction_id"]]
    finally:
        store.close()
    assert row["product_key"] == "fb-ok:0" and row["queue"] == "feedback" and row["source"] == "production"
    assert (row["old_code"], row["new_code"]) == (served["code"], wrong)
    assert row["reviewer"] == "service:reviewer-bot for alice"
    assert row["designation"] == POOL["designation"] and row["description"] == POOL["description"]
    assert row["image_file"] == logged["image_file"] and row["model_version"] == 1
    assert row["note"] == "a pool, not a toy"
    assert (settings.review_inputs_dir / row["image_file"]).read_bytes() == picture()
    [audited] = audited_since(trail, last)
    assert (audited["actor"], audited["action"], audited["target"], audited["outcome"]) == (
        "service:reviewer-bot",
        "review",
        "prediction:fb-ok:0",
        "done",
    )
    assert audited["reason"] == "a pool, not a toy"
    assert audited["detail"] == f"correction #{out['correction_id']}: {served['code']} → {wrong} (relabel)"


def test_feedback_refuses_what_it_cannot_record(client: TestClient) -> None:
    served = client.post("/predict", json=POOL, headers={"X-Request-ID": "fb-refused"}).json()
    r = client.post("/feedback", json={"request_id": "never-served", "true_code": 10}, headers=bearer(TOKEN))
    assert r.status_code == 404 and error_of(r) == "unknown_request"
    assert "X-Request-ID" in r.json()["detail"]
    r = client.post(
        "/feedback", json={"request_id": "fb-refused", "item": 3, "true_code": 10}, headers=bearer(TOKEN)
    )
    assert r.status_code == 404 and error_of(r) == "unknown_request"  # a single prediction has item 0 only
    r = client.post("/feedback", json={"request_id": "fb-refused", "true_code": 12345}, headers=bearer(TOKEN))
    assert r.status_code == 422 and error_of(r) == "unknown_class"
    assert "12345" in r.json()["detail"]
    r = client.post("/feedback", json={"request_id": "fb-refused"}, headers=bearer(TOKEN))
    assert r.status_code == 422 and error_of(r) == "invalid_request"  # no true_code
    body = {"request_id": "fb-refused", "true_code": other_code(served["code"])}
    assert client.post("/feedback", json=body, headers=bearer(TOKEN)).status_code == 201
    r = client.post("/feedback", json=body, headers=bearer(TOKEN))
    assert r.status_code == 409 and error_of(r) == "duplicate_correction"
    r = client.post("/feedback", json=body | {"true_code": served["code"]}, headers=bearer(TOKEN))
    assert r.status_code == 409 and error_of(r) == "conflicting_correction"
    assert "undo" in r.json()["detail"]


def test_feedback_needs_the_reviewer_role(
    client: TestClient, settings: Settings, tokens: dict[Role, str], trail: AuditTrail
) -> None:
    client.post(
        "/predict/batch", json=[POOL, POOL, {"designation": "Livre"}], headers={"X-Request-ID": "fb-auth"}
    )
    body = {"request_id": "fb-auth", "item": 2, "true_code": 2403, "reviewer": "mallory"}
    last = last_row(trail)
    r = client.post("/feedback", json=body)
    assert r.status_code == 401 and error_of(r) == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.post("/feedback", json=body, headers=bearer("rkt_wrong-token"))
    assert r.status_code == 401 and error_of(r) == "invalid_token"
    for role in (Role.VIEWER, Role.OPERATOR):  # an operator runs the platform, a reviewer labels
        r = client.post("/feedback", json=body, headers=bearer(tokens[role]))
        assert r.status_code == 403 and error_of(r) == "forbidden"
        assert "needs the reviewer role" in r.json()["detail"]
    # break-glass: an admin, recorded by that name (the body's reviewer is a service token's to give)
    accepted = client.post("/feedback", json=body, headers=bearer(TOKEN))
    assert accepted.status_code == 201, accepted.text
    served = client.post("/predict", json={"designation": "Livre"}).json()["code"]  # the same product
    assert accepted.json()["predicted_code"] == served and accepted.json()["item"] == 2
    assert accepted.json()["verdict"] == ("confirm" if served == 2403 else "relabel")
    store = CorrectionsStore.open(str(settings.inference_log_url))
    try:
        assert (
            store.table().set_index("id").loc[accepted.json()["correction_id"], "reviewer"] == "break-glass"
        )
    finally:
        store.close()
    rows = audited_since(trail, last)
    assert [(row["actor"], row["outcome"]) for row in rows] == [
        ("anonymous", "refused"),
        ("anonymous", "refused"),
        ("service:viewer-bot", "refused"),
        ("service:operator-bot", "refused"),
        ("break-glass", "done"),
    ]
    assert [row["detail"] for row in rows[:2]] == ["unauthenticated", "invalid_token"]
    assert {row["target"] for row in rows} == {"prediction:fb-auth:2"}
    assert {row["action"] for row in rows} == {"review"}
    metrics = client.get("/metrics").text
    assert 'rakuten_auth_refusals_total{reason="forbidden",route="/feedback"}' in metrics


def test_a_failed_feedback_is_audited_as_failed(
    client: TestClient, tokens: dict[Role, str], trail: AuditTrail
) -> None:
    last = last_row(trail)
    r = client.post("/feedback", json={"request_id": "never-served", "true_code": 10}, headers=bearer(TOKEN))
    assert r.status_code == 404
    [row] = audited_since(trail, last)
    assert (row["actor"], row["target"], row["outcome"]) == (
        "break-glass",
        "prediction:never-served:0",
        "failed",
    )
    assert "No prediction with request id 'never-served'" in str(row["detail"])


def test_a_low_confidence_photo_is_kept_for_review(client: TestClient, settings: Settings) -> None:
    writer = client.app.state.service.writer  # type: ignore[attr-defined]
    photo = picture("PNG", colour=(200, 30, 30))
    r = client.post(
        "/predict/image", files={"file": ("p.png", photo, "image/png")}, headers={"X-Request-ID": "keep-1"}
    )
    assert r.status_code == 200 and r.json()["probability"] < settings.review_confidence
    client.post("/predict", json=POOL, headers={"X-Request-ID": "keep-2"})  # no photo: nothing to keep
    assert writer.flush()
    log = read_inference_log(settings).set_index("request_id")
    name = log.loc["keep-1", "image_file"]
    assert name.endswith(".png") and (settings.review_inputs_dir / name).read_bytes() == photo
    assert pd.isna(log.loc["keep-2", "image_file"])
    assert log.loc["keep-1", "image_code"] == r.json()["views"][0]["top_k"][0]["code"]
    assert json.loads(log.loc["keep-1", "top_codes"])[0][0] == r.json()["code"]


# --- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"json": {}}, 422, "invalid_request"),  # missing designation
        ({"json": {"designation": 12}}, 422, "invalid_request"),
        ({"json": {"designation": "   "}}, 422, "missing_title"),
        ({"json": {"designation": "x" * 501}}, 422, "text_too_long"),
        ({"json": {"designation": "ok", "description": "y" * 501}}, 422, "text_too_long"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "invalid_request"),
        (
            {"content": b"designation=x", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ({"data": {"designation": "x"}}, 415, "unsupported_media_type"),  # a form, not JSON
    ],
)
def test_predict_bad_input(client: TestClient, kwargs: dict[str, object], status: int, reason: str) -> None:
    r = client.post("/predict", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    assert error_of(r) == reason


@pytest.mark.parametrize(
    ("path", "headers", "said"),
    [
        (
            "/predict",
            {},
            "Send the product as JSON ('Content-Type: application/json'): the request has no "
            "Content-Type header.",
        ),
        (
            "/predict",
            {"content-type": "text/plain"},
            "Send the product as JSON ('Content-Type: application/json'), not text/plain.",
        ),
        (
            "/predict/image",
            {},
            "Upload the image as multipart/form-data (a form field named 'file'): the "
            "request has no Content-Type header.",
        ),
        (
            "/predict/batch",
            {},
            "Send the batch as application/json, text/csv or a multipart CSV upload: the request has no "
            "Content-Type header.",
        ),
        (
            "/predict/batch",
            {"content-type": "application/xml"},
            "Send the batch as application/json, text/csv or a multipart CSV upload, not application/xml.",
        ),
    ],
)
def test_a_wrong_or_missing_content_type_is_named(
    client: TestClient, path: str, headers: dict[str, str], said: str
) -> None:
    r = client.post(path, content=b'{"designation": "x"}', headers=headers)
    assert r.status_code == 415 and error_of(r) == "unsupported_media_type"
    assert r.json()["detail"] == said


def test_k_out_of_range(client: TestClient) -> None:
    r = client.post("/predict", json=POOL, params={"k": 0})
    assert r.status_code == 422 and error_of(r) == "invalid_request"


def bomb() -> bytes:
    """A small PNG whose header claims 4,000 × 4,000 pixels: decoding it would take 48 MB."""
    buffer = io.BytesIO()
    Image.new("L", (4000, 4000), 0).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("file", "status", "reason"),
    [
        (("a.txt", b"just text", "text/plain"), 415, "unsupported_media_type"),
        (("a.jpg", b"just text", "image/jpeg"), 415, "unsupported_image"),
        (("a.gif", picture("GIF"), "application/octet-stream"), 415, "unsupported_image"),
        (("a.jpg", picture(size=(200, 200))[:250], "image/jpeg"), 422, "corrupt_image"),
        (("a.jpg", b"", "image/jpeg"), 422, "empty_image"),
        (("", b"", "application/octet-stream"), 422, "invalid_request"),  # an empty form field: no file
        (("big.bmp", b"\0" * 70_000, "image/jpeg"), 413, "image_too_large"),
        (("bomb.png", bomb(), "image/png"), 413, "image_too_large"),
    ],
)
def test_image_bad_input(client: TestClient, file: tuple[str, bytes, str], status: int, reason: str) -> None:
    r = client.post("/predict/image", files={"file": file})
    assert r.status_code == status, r.text
    assert error_of(r) == reason


def test_image_route_needs_a_file(client: TestClient) -> None:
    r = client.post("/predict/image", json={"file": "abc"})
    assert r.status_code == 415
    r = client.post("/predict/image", files={"other": ("a.jpg", picture(), "image/jpeg")})
    assert r.status_code == 422 and error_of(r) == "invalid_request"


def test_product_bad_input(client: TestClient) -> None:
    r = client.post("/predict/product", json=POOL)
    assert r.status_code == 415 and error_of(r) == "unsupported_media_type"
    r = client.post("/predict/product", files={"file": ("a.jpg", picture(), "image/jpeg")})
    assert r.status_code == 422 and error_of(r) == "invalid_request"  # no designation field
    r = client.post("/predict/product", data=POOL, files={"file": ("a.jpg", b"nope", "image/jpeg")})
    assert r.status_code == 415 and error_of(r) == "unsupported_image"


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"json": {"products": []}}, 422, "empty_batch"),
        ({"json": [{"designation": "x"}] * 21}, 413, "batch_too_large"),
        ({"json": [{"designation": "x"}, {"description": "no title"}]}, 422, "invalid_request"),
        ({"json": [{"designation": "x"}, {"designation": "y" * 501}]}, 422, "text_too_long"),
        ({"json": {"items": []}}, 422, "invalid_request"),
        ({"content": b"title\nA\n", "headers": {"content-type": "text/csv"}}, 422, "csv_missing_column"),
        (
            {"content": b'designation\n"open\n', "headers": {"content-type": "text/csv"}},
            422,
            "csv_malformed_csv",
        ),
        (
            {"content": "designation\né\n".encode("utf-16"), "headers": {"content-type": "text/csv"}},
            422,
            "csv_encoding",
        ),
        ({"content": b"", "headers": {"content-type": "text/csv"}}, 422, "csv_empty_csv"),
        ({"files": {"other": ("x.csv", b"designation\nA\n", "text/csv")}}, 422, "missing_file"),
        (
            {"content": b"<xml/>", "headers": {"content-type": "application/xml"}},
            415,
            "unsupported_media_type",
        ),
    ],
)
def test_batch_bad_input(client: TestClient, kwargs: dict[str, object], status: int, reason: str) -> None:
    r = client.post("/predict/batch", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    assert error_of(r) == reason


def test_bodies_over_the_cap_get_413_with_or_without_content_length(client: TestClient) -> None:
    big = json.dumps({"designation": "x" * 400_000}).encode()
    r = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and error_of(r) == "body_too_large"

    def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length to check up front
        for _ in range(40):
            yield b"x" * 10_000

    r = client.post("/predict/batch", content=chunks(), headers={"content-type": "text/csv"})
    assert r.status_code == 413 and error_of(r) == "body_too_large"


def test_unknown_route_and_method(client: TestClient) -> None:
    assert error_of(client.get("/nope")) == "not_found"
    assert error_of(client.get("/predict")) == "method_not_allowed"


# --- what monitoring sees -----------------------------------------------------------------------------
def test_metrics_expose_requests_predictions_errors_and_model(client: TestClient) -> None:
    client.post("/predict", json=POOL)
    client.post("/predict", json={})
    text = client.get("/metrics").text
    assert 'http_requests_total{handler="/predict",method="POST",status="200"}' in text
    assert 'http_requests_total{handler="/predict",method="POST",status="422"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert 'rakuten_predictions_total{code="' in text and "rakuten_prediction_confidence_bucket" in text
    assert 'rakuten_model_info{run_id="' in text and 'version="1"} 1.0' in text
    assert "rakuten_model_loaded 1.0" in text
    assert 'rakuten_errors_total{reason="invalid_request"}' in text
    assert "rakuten_inference_log_write_failures_total 0.0" in text


def test_every_prediction_is_in_the_inference_log(client: TestClient, settings: Settings) -> None:
    writer = client.app.state.service.writer  # type: ignore[attr-defined]
    assert writer.flush()
    before = len(read_inference_log(settings))
    client.post("/predict", json=POOL, headers={"X-Request-ID": "log-check-1"})
    client.post(
        "/predict/product",
        data=POOL,
        files={"file": ("p.jpg", picture(), "image/jpeg")},
        headers={"X-Request-ID": "log-check-2"},
    )
    client.post("/predict/batch", json=[POOL, POOL, POOL], headers={"X-Request-ID": "log-check-3"})
    client.post("/predict", json={})  # refused: not logged
    assert writer.flush()
    log = read_inference_log(settings)
    assert len(log) == before + 5
    new = log.tail(5)
    assert new["request_id"].tolist() == ["log-check-1", "log-check-2"] + ["log-check-3"] * 3
    assert new["route"].tolist() == ["text", "product", "batch", "batch", "batch"]
    assert new["item"].tolist() == [0, 0, 0, 1, 2]
    image_row = new.iloc[1]
    assert (
        image_row["has_image"] and image_row["image_width"] == 120 and 0 < image_row["image_brightness"] < 1
    )
    assert (new["model_version"] == 1).all() and (new["latency_ms"] > 0).all()
    assert new["designation"].iloc[0] == POOL["designation"]
    assert new["description_length"].iloc[0] == len(POOL["description"])
    assert set(new["origin"]) == {"api"}  # no origin header: any client of the API


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def test_concurrent_title_requests_are_answered_together_each_as_if_alone(
    client: TestClient, settings: Settings
) -> None:
    """Requests arriving while the model runs go to it together (the coalescer): each still gets what
    it would have alone — its own top k, its own request id in the answer and in the log."""
    x = pd.read_csv(settings.data_dir / "X_test_update.csv", index_col=0, keep_default_na=False).head(24)
    products = [  # within this app's 500-character limit
        {"designation": d[:400], "description": e[:400]}
        for d, e in zip(x["designation"], x["description"], strict=True)
    ]
    ks = [1 + i % 5 for i in range(len(products))]
    alone = [
        client.post("/predict", json=p, params={"k": k}).json() for p, k in zip(products, ks, strict=True)
    ]
    before = client.get("/metrics").text

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as together:
            return await asyncio.gather(
                *(
                    together.post("/predict", json=p, params={"k": k}, headers={"X-Request-ID": f"burst-{i}"})
                    for i, (p, k) in enumerate(zip(products, ks, strict=True))
                )
            )

    responses = client.portal.call(burst)  # type: ignore[union-attr]
    for i, (response, single) in enumerate(zip(responses, alone, strict=True)):
        body = response.json()
        assert response.status_code == 200 and body["request_id"] == f"burst-{i}"
        assert [r["code"] for r in body["top_k"]] == [r["code"] for r in single["top_k"]]
        assert [r["probability"] for r in body["top_k"]] == pytest.approx(
            [r["probability"] for r in single["top_k"]]
        )
        assert len(body["top_k"]) == ks[i] and body["views"] == single["views"]
    after = client.get("/metrics").text
    calls = _metric(after, "rakuten_coalesced_requests_count") - _metric(
        before, "rakuten_coalesced_requests_count"
    )
    answered = _metric(after, "rakuten_coalesced_requests_sum") - _metric(
        before, "rakuten_coalesced_requests_sum"
    )
    assert answered == len(products) and calls < len(products)  # some model calls answered several
    writer = client.app.state.service.writer  # type: ignore[attr-defined]
    assert writer.flush()
    log = read_inference_log(settings).set_index("request_id")
    assert log.loc[[f"burst-{i}" for i in range(len(products))], "predicted_code"].tolist() == [
        r.json()["code"] for r in responses
    ]


def test_a_worker_busy_with_another_batch_closes_the_connection(settings: Settings) -> None:
    """With several workers, a batch answered while another still runs in the same worker ends its
    connection, so the client's next batch goes to whichever worker accepts it first; the last one
    keeps its connection (one worker: always kept, there is nowhere else to go)."""
    products = [
        {"designation": f"{POOL['designation']} {i}", "description": POOL["description"]} for i in range(800)
    ]
    limits = {"api_max_batch": 1000, "api_max_body_bytes": 10_000_000}

    async def two_batches(app: object) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as together:
            return list(
                await asyncio.gather(*(together.post("/predict/batch", json=products) for _ in range(2)))
            )

    for workers, closed in ((2, ["close", None]), (1, [None, None])):
        app = create_app(settings.model_copy(update={"api_workers": workers, **limits}))
        with TestClient(app) as client:
            responses = client.portal.call(two_batches, app)  # type: ignore[union-attr]
        assert [r.status_code for r in responses] == [200, 200]
        assert sorted((r.headers.get("connection") for r in responses), key=str) == sorted(closed, key=str)


def test_the_origin_a_client_names_is_logged(client: TestClient, settings: Settings) -> None:
    writer = client.app.state.service.writer  # type: ignore[attr-defined]
    for origin, rid in (("console", "origin-1"), ("Simulator", "origin-2"), ("anything-else", "origin-3")):
        client.post("/predict", json=POOL, headers={"X-Request-ID": rid, "X-Rakuten-Origin": origin})
    assert writer.flush()
    log = read_inference_log(settings).set_index("request_id")
    assert log.loc[["origin-1", "origin-2", "origin-3"], "origin"].tolist() == ["console", "simulator", "api"]


# --- no model -------------------------------------------------------------------------------------------
def test_without_a_champion_predictions_get_503(project: Path) -> None:
    with TestClient(create_app(Settings(root=project, api_alias_check_s=0))) as c:
        r = c.post("/predict", json=POOL)
        assert r.status_code == 503 and error_of(r) == "no_model"
        assert "python -m core pipeline" in r.json()["detail"]
        ready = c.get("/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert c.get("/health").status_code == 200
        assert "rakuten_model_loaded 0.0" in c.get("/metrics").text


def test_metrics_expose_the_latest_drift_report(client: TestClient, settings: Settings) -> None:
    """Before any drift report: only "available 0"; after one is written (by the CLI, the console or
    the flow — any process), its decision, share, time and per-column scores."""
    import json
    import time
    from datetime import UTC, datetime

    folder = settings.drift_dir
    (folder / "latest.json").unlink(missing_ok=True)
    text = client.get("/metrics").text
    assert "rakuten_drift_report_available 0.0" in text and "rakuten_drift_detected" not in text
    summary = {
        "created_at": "2026-11-27T09:00:00+00:00",
        "drift_detected": True,
        "drifted_share": 0.6,
        "drift_share_threshold": 0.5,
        "current_rows": 1234,
        "columns": [
            {
                "column": "title",
                "kind": "text",
                "method": "Absolute text content drift",
                "score": 0.71,
                "threshold": 0.55,
                "drifted": True,
            }
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(summary))
    try:
        text = client.get("/metrics").text
        assert "rakuten_drift_report_available 1.0" in text and "rakuten_drift_detected 1.0" in text
        assert "rakuten_drift_share 0.6" in text and "rakuten_drift_window_rows 1234.0" in text
        stamp = next(line for line in text.splitlines() if line.startswith("rakuten_drift_report_timestamp"))
        assert float(stamp.split()[-1]) == datetime(2026, 11, 27, 9, tzinfo=UTC).timestamp()
        assert 'rakuten_drift_column_score{column="title",method="Absolute text content drift"} 0.71' in text
        assert 'rakuten_drift_column_drifted{column="title"} 1.0' in text
        time.sleep(0.01)
        (folder / "latest.json").write_text(json.dumps(summary | {"drift_detected": False}))
        assert "rakuten_drift_detected 0.0" in client.get("/metrics").text  # a newer report is picked up
    finally:
        (folder / "latest.json").unlink()
