"""Model integrity: digests recorded at registration, checked before a registered model loads."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import REGISTERED_MODEL_NAME, Settings
from core.tracking import integrity, store
from core.tracking.integrity import DIGEST_TAG, ModelIntegrityError
from tests.conftest import build_trained_project, clean_env


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "artifacts").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "artifacts" / "classifier.pkl").write_bytes(b"\x80\x05 the fitted model")
    return folder


def test_unchanged_files_verify(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    recorded = integrity.encode(integrity.folder_digests(folder))
    assert set(integrity.decode(recorded)) == {"MLmodel", "artifacts/classifier.pkl"}
    integrity.verify(folder, recorded, 3)  # no exception


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            lambda f: (f / "artifacts" / "classifier.pkl").write_bytes(b"cos\nsystem\n"),
            "classifier.pkl differs",
        ),
        (lambda f: (f / "artifacts" / "classifier.pkl").unlink(), "classifier.pkl is missing"),
        (lambda f: (f / "artifacts" / "extra.pkl").write_bytes(b"x"), "extra.pkl was added"),
    ],
    ids=["tampered", "removed", "added"],
)
def test_any_change_to_the_files_is_refused(tmp_path: Path, change: object, says: str) -> None:
    folder = _folder(tmp_path)
    recorded = integrity.encode(integrity.folder_digests(folder))
    change(folder)  # type: ignore[operator]
    with pytest.raises(ModelIntegrityError, match=says) as caught:
        integrity.verify(folder, recorded, 3)
    assert caught.value.kind == "mismatch" and caught.value.version == 3


@pytest.mark.parametrize("recorded", [None, "", "not json", '["a list"]'])
def test_a_version_without_readable_digests_is_refused(tmp_path: Path, recorded: str | None) -> None:
    with pytest.raises(ModelIntegrityError, match="v4 refused") as caught:
        integrity.verify(_folder(tmp_path), recorded, 4)
    assert caught.value.kind == "missing"


# --- through the registry: a trained project ------------------------------------------------------
@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A project of its own: these tests tamper with its artifact store."""
    root = tmp_path_factory.mktemp("integrity") / "project"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        clean_env(mp, root)
        mp.chdir(root)
        build_trained_project(root)
        yield Settings(root=root)


def _model_folder(settings: Settings, version: int) -> Path:
    uri = store.connect(settings).get_model_version_download_uri(REGISTERED_MODEL_NAME, str(version))
    return Path(uri.removeprefix("file://"))


def test_the_trainer_records_a_digest_of_every_file_loading_reads(registered: Settings) -> None:
    tags = store.connect(registered).get_model_version(REGISTERED_MODEL_NAME, "1").tags
    recorded = integrity.decode(tags[DIGEST_TAG])
    folder = _model_folder(registered, 1)
    assert recorded == integrity.folder_digests(folder)
    assert "artifacts/classifier.pkl" in recorded and "MLmodel" in recorded
    assert any(name.endswith(".py") for name in recorded)  # the model's code, which loading runs
    assert store.load_classifier(registered, alias="champion").classes.size == 27


def test_a_tampered_classifier_never_loads(registered: Settings, tmp_path: Path) -> None:
    pickled = _model_folder(registered, 1) / "artifacts" / "classifier.pkl"
    kept = tmp_path / "classifier.pkl"
    shutil.copy2(pickled, kept)
    ran = tmp_path / "ran"
    # a pickle that would run a command the moment it is loaded
    payload = b"cos\nsystem\n(V" + f"touch {ran}".encode() + b"\ntR."
    try:
        pickled.write_bytes(payload)
        with pytest.raises(ModelIntegrityError, match=r"classifier\.pkl differs"):
            store.load_classifier(registered, version=1)
        assert not ran.exists()
    finally:
        shutil.copy2(kept, pickled)
    store.load_classifier(registered, version=1)  # restored: loads again


def test_a_version_without_digests_is_refused(registered: Settings) -> None:
    client = store.connect(registered)
    recorded = client.get_model_version(REGISTERED_MODEL_NAME, "1").tags[DIGEST_TAG]
    client.delete_model_version_tag(REGISTERED_MODEL_NAME, "1", DIGEST_TAG)
    try:
        with pytest.raises(ModelIntegrityError, match="no file digests are recorded") as caught:
            store.load_classifier(registered, alias="champion")
        assert caught.value.kind == "missing"
    finally:
        client.set_model_version_tag(REGISTERED_MODEL_NAME, "1", DIGEST_TAG, recorded)
