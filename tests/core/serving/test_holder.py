"""`ModelHolder`: the champion loaded from the registry, the alias check, and the local fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from core.serving.holder import ModelHolder, NoModelError


def serving_settings(project: Path, tmp_path: Path, **overrides: object) -> Settings:
    """The trained project's registry, with this test's own local-copy folder."""
    return Settings(root=project, models_dir=tmp_path / "models", **overrides)  # type: ignore[arg-type]


def test_start_loads_the_champion_and_saves_a_local_copy(trained_source: Path, tmp_path: Path) -> None:
    changes: list[tuple[object, object]] = []
    holder = ModelHolder(
        serving_settings(trained_source, tmp_path), on_change=lambda a, b: changes.append((a, b))
    )
    model = holder.start()
    assert model is not None and model.version == 1 and model.source == "registry"
    assert model.alias == "champion" and model.run_id and 0 < model.metrics["weighted_f1"] <= 1
    assert changes == [(None, model)]
    assert model.file == tmp_path / "models" / "serving" / "v1" / "classifier.pkl"
    assert model.file.is_file()
    # the alias has not moved: nothing to do, and nothing is reloaded
    assert not holder.champion_moved()
    result = holder.reload()
    assert result.outcome == "unchanged" and holder.current is model


def test_registry_unreachable_at_start_falls_back_to_the_local_copy(
    trained_source: Path, tmp_path: Path
) -> None:
    ModelHolder(serving_settings(trained_source, tmp_path)).start()  # leaves the local copy
    (tmp_path / "a-file").write_text("not a folder")  # so the store cannot be created, even as root
    broken = serving_settings(
        trained_source, tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path}/a-file/mlflow.db"
    )
    holder = ModelHolder(broken)
    model = holder.start()
    assert model is not None and model.source == "local" and model.version == 1
    assert model.file is not None and model.file.is_file()
    assert holder.last_error and "registry" in holder.last_error
    # a failed reload keeps serving what it has
    result = holder.reload()
    assert result.outcome == "failed" and holder.current is model


def test_no_champion_and_no_copy_means_no_model(project: Path, tmp_path: Path) -> None:
    holder = ModelHolder(Settings(root=project))
    assert holder.start() is None
    with pytest.raises(NoModelError, match="python -m core pipeline"):
        holder.require()


def test_a_local_copy_unlike_its_saved_digest_is_not_loaded(trained_source: Path, tmp_path: Path) -> None:
    model = ModelHolder(serving_settings(trained_source, tmp_path)).start()
    assert model is not None and model.file is not None
    model.file.write_bytes(model.file.read_bytes() + b"changed")
    (tmp_path / "a-file").write_text("not a folder")
    broken = serving_settings(
        trained_source, tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path}/a-file/mlflow.db"
    )
    holder = ModelHolder(broken)
    assert holder.start() is None  # neither the registry nor a trustworthy copy
    with pytest.raises(NoModelError):
        holder.require()
