"""Every route of the prediction API and every kind of bad input, through FastAPI's TestClient.

One app per module, serving the session's trained champion (v1) with small limits so each cap is
easy to cross; its inference log and local model copy live in the module's own folder.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.config import Settings
from core.serving.app import create_app
from core.storage.corrections import CorrectionsStore
from core.storage.inference_log import read_inference_log
from tests.core.serving.conftest import picture

TOKEN = "test-admin-token-1234567890"
REVIEW_TOKEN = "test-review-token-0987654321"
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
        review_token=REVIEW_TOKEN,  # type: ignore[arg-type]
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
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


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
    files = {"file": ("p.jpg", picture(), "image/jpeg")}
    r = client.post("/predict/product", data=POOL, files=files)
    assert r.status_code == 200 and r.json()["modalities"] == ["text", "image"]
    # Each view's own answer beside the fused one: what the title says, what the photo says.
    views = r.json()["views"]
    assert [v["view"] for v in views] == ["text", "image"]
    for view in views:
        assert len(view["top_k"]) == 3 and view["top_k"][0]["category"]
        scores = [t["probability"] for t in view["top_k"]]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-9
    r = client.post("/predict/product", data={"designation": POOL["designation"]}, files={"x": ("", b"")})
    assert r.status_code == 200 and r.json()["modalities"] == ["text"]  # no image given
    r = client.post("/predict/product", data=POOL)  # URL-encoded: a form without a file
    assert r.status_code == 200 and r.json()["modalities"] == ["text"]


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


def test_cors_allows_the_console_only(client: TestClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = client.options("/predict", headers={"Origin": "http://127.0.0.1:8501", **preflight})
    assert ok.headers["access-control-allow-origin"] == "http://127.0.0.1:8501"
    other = client.options("/predict", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


# --- admin -------------------------------------------------------------------------------------------
def test_admin_reload_needs_the_token(client: TestClient) -> None:
    r = client.post("/admin/reload")
    assert r.status_code == 401 and error_of(r) == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.post("/admin/reload", headers={"Authorization": "Bearer wrong-token"})
    assert r.status_code == 403 and error_of(r) == "forbidden"
    r = client.post("/admin/reload", headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401
    r = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert r.json() == {"outcome": "unchanged", "version": 1, "previous": 1, "detail": "v1 is the champion"}


def test_admin_and_review_are_disabled_without_configured_tokens(
    trained_source: Path, tmp_path: Path
) -> None:
    settings = Settings(
        root=trained_source,
        models_dir=tmp_path,
        inference_log_url=f"sqlite:///{tmp_path}/l.db",
        api_alias_check_s=0,
    )
    with TestClient(create_app(settings)) as c:
        r = c.post("/admin/reload", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403 and error_of(r) == "admin_disabled"
        assert "RAKUTEN_API_ADMIN_TOKEN" in r.json()["detail"]
        r = c.post("/feedback", json={"request_id": "x", "true_code": 10}, headers=bearer("anything"))
        assert r.status_code == 403 and error_of(r) == "review_disabled"
        assert "RAKUTEN_REVIEW_TOKEN" in r.json()["detail"]


# --- review feedback ----------------------------------------------------------------------------------
def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def other_code(code: int) -> int:
    return 10 if code != 10 else 40


def test_feedback_records_a_correction_with_what_the_log_kept(client: TestClient, settings: Settings) -> None:
    files = {"file": ("p.jpg", picture(), "image/jpeg")}
    served = client.post("/predict/product", data=POOL, files=files, headers={"X-Request-ID": "fb-ok"}).json()
    wrong = other_code(served["code"])
    # Sent at once: the log is written in the background, the route waits for it when it must.
    body = {"request_id": "fb-ok", "true_code": wrong, "reviewer": "alice", "note": "a pool, not a toy"}
    r = client.post("/feedback", json=body, headers=bearer(TOKEN))
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
    assert (row["old_code"], row["new_code"], row["reviewer"]) == (served["code"], wrong, "alice")
    assert row["designation"] == POOL["designation"] and row["description"] == POOL["description"]
    assert row["image_file"] == logged["image_file"] and row["model_version"] == 1
    assert row["note"] == "a pool, not a toy"
    assert (settings.review_inputs_dir / row["image_file"]).read_bytes() == picture()


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


def test_feedback_needs_a_reviewer_or_admin_token(client: TestClient) -> None:
    client.post(
        "/predict/batch", json=[POOL, POOL, {"designation": "Livre"}], headers={"X-Request-ID": "fb-auth"}
    )
    body = {"request_id": "fb-auth", "item": 2, "true_code": 2403}
    r = client.post("/feedback", json=body)
    assert r.status_code == 401 and error_of(r) == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.post("/feedback", json=body, headers=bearer("wrong-token"))
    assert r.status_code == 403 and error_of(r) == "forbidden"
    r = client.post("/feedback", json=body, headers=bearer(REVIEW_TOKEN))  # the reviewer's own token
    assert r.status_code == 201, r.text
    served = client.post("/predict", json={"designation": "Livre"}).json()["code"]  # the same product
    assert r.json()["predicted_code"] == served and r.json()["item"] == 2
    assert r.json()["verdict"] == ("confirm" if served == 2403 else "relabel")


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
