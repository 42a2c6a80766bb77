"""Review and correct, in a real browser against the session's console and API: unsure and split
answers sent through the API and a label-issue scan fill the queues; three items are corrected (one of
each kind: low confidence, text and photo disagreeing, suspicious training label), one is undone, the
corrections are exported and a retrain is started from the console. The new version's training data
holds the two remaining corrections (the Models page says so) and the downloaded files are unchanged."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from core.identity.roles import local_user
from core.storage.audit import AuditFilter, AuditTrail
from core.storage.corrections_file import read_corrections_file
from tests.e2e.conftest import Console, choose, exceptions, open_page, snapshot
from tests.e2e.test_operations import RUN_TIMEOUT_S, _client, registered_versions, wait_until

pytestmark = pytest.mark.slow

NAMES = {"low_confidence": "low confidence", "views_disagree": "text and photo disagree"}


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _traffic(console: Console) -> None:
    """Answers the model cannot be sure of (titles of no class), and products whose title says one
    thing and whose photo another."""
    photos = sorted((console.root / "data" / "raw" / "images" / "image_test").glob("*.jpg"))[:6]
    with httpx.Client(base_url=console.api_url, timeout=60) as api:
        for title in ("zq xv wk", "lot divers 12", "article 4 ref b", "objet", "xx yy zz", "kit n 3"):
            api.post("/predict", json={"designation": title}).raise_for_status()
        for photo in photos:
            files = {"file": (photo.name, photo.read_bytes(), "image/jpeg")}
            data = {"designation": "Piscine tubulaire Intex 366 x 122 cm avec pompe de filtration"}
            api.post("/predict/product", data=data, files=files).raise_for_status()
    time.sleep(2)  # the log is written by a background thread


def _current(page: Any) -> tuple[str, str]:
    """The shown item's queue name and key, from its caption ("Production · low confidence · `key`")."""
    caption = page.get_by_text(re.compile(r"^(Production|Training data) · .+ · ")).first
    caption.wait_for()
    text = caption.inner_text()
    queue = text.split(" · ")[1]
    return queue, text.rsplit("·", 1)[1].strip().strip("`")


def _until(page: Any, queue: str) -> str:
    """Skip items until one of `queue` shows; its key."""
    for _ in range(40):
        shown, key = _current(page)
        if shown == queue:
            return key
        page.get_by_role("button", name="Skip").click()
        page.wait_for_timeout(700)
    raise AssertionError(f"no {queue} item in the queue")


def _decided(page: Any, key: str) -> None:
    page.get_by_text(re.compile(rf"`?{re.escape(key)}`? (labelled|set aside)")).first.wait_for()


def _pick_class(page: Any, name: str) -> None:
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Right class").first
    choose(page, box, page.get_by_role("option", name=re.compile(name)).first)


def test_review_correct_export_retrain(page: Any, console: Console, screenshots: Path) -> None:
    raw = _digest(console.root / "data" / "raw")
    _traffic(console)
    open_page(page, console, "review", "Review")

    low = _until(page, NAMES["low_confidence"])  # 1. an unsure answer: the right class is a toy
    _pick_class(page, "1280")
    page.get_by_role("button", name="Set this class").click()
    _decided(page, low)

    page.get_by_text("Training data", exact=True).first.click()  # the queue switch
    page.get_by_role("button", name="Scan the training labels").click()
    page.get_by_text(re.compile(r"^Scan done in")).first.wait_for()
    _, label_issue = _current(page)  # 2. the most suspicious training label: set the suggested class
    assert label_issue.startswith("train:")
    snapshot(page, screenshots / "review-training.png")
    page.get_by_role("button", name="Set this class").click()
    _decided(page, label_issue)

    page.get_by_text("Production", exact=True).first.click()
    split = _until(page, NAMES["views_disagree"])  # 3. text and photo disagree: accept the answer
    snapshot(page, screenshots / "review-production.png")
    page.get_by_role("button", name="Accept answer").click()
    _decided(page, split)
    page.get_by_role("button", name="Undo").click()  # … and take it back
    page.get_by_text(re.compile(rf"of `?{re.escape(split)}`? undone")).first.wait_for()

    page.get_by_role("button", name="Export corrections").click()
    page.get_by_text(re.compile(r"2 corrections exported")).first.wait_for()
    assert not exceptions(page), exceptions(page)
    exported = read_corrections_file(console.root / "data" / "corrections" / "labels.csv")
    assert sorted(exported["product_key"]) == sorted([low, label_issue])

    before = registered_versions(console.root)
    open_page(page, console, "pipeline_runs", "Pipeline runs")
    page.get_by_role("button", name="Retrain", exact=True).click()
    wait_until(lambda: len(registered_versions(console.root)) > len(before), RUN_TIMEOUT_S, "the retrain")
    new = max(registered_versions(console.root))
    tags = _client(console.root).get_model_version("rakuten-product-classifier", str(new)).tags
    assert tags.get("data.corrections") == "2", tags

    train = pd.read_parquet(console.root / "data" / "interim" / "train.parquet")
    row = int(label_issue.split(":")[1])
    assert train.loc[train["id"] == row, "labelled_by"].tolist() == ["reviewer"]
    added = train[train["labelled_by"] == "production"]
    assert len(added) == 1 and added["prdtypecode"].tolist() == [1280]
    assert _digest(console.root / "data" / "raw") == raw  # the download is never edited

    open_page(page, console, "models", "Models")
    page.get_by_text(re.compile(rf"v{new} was trained with 2 reviewed labels")).first.wait_for()
    # every step above is in the audit trail once, as the person at the console (the local user here)
    trail = AuditTrail.open(f"sqlite:///{console.root / 'data' / 'inference.db'}")
    ours = trail.read(AuditFilter(actors=[local_user().name], entries=["console"]))
    done = ours[ours["outcome"] == "done"]
    for target in (f"product:{low}", f"product:{label_issue}"):
        assert (done["target"] == target).sum() == 1, target
    assert done.loc[done["target"] == f"product:{split}", "reason"].tolist() == ["undo", ""]
    for action in ("scan_labels", "export_corrections", "retrain"):
        assert action in set(done["action"]), action
    assert not exceptions(page)
    snapshot(page, screenshots / "review-models.png")
