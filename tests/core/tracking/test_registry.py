"""The registry adapter against a real (SQLite) MLflow store: aliases, compare-and-set promotion,
rollback as undo, a durable history, and one champion under concurrent promotions."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from core.config import Settings
from core.tracking import integrity, store
from core.tracking.integrity import DIGEST_TAG
from core.tracking.registry import AliasMove, PromotionConflict, Registry, RegistryError

NAME = "test-classifier"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _add_versions(client: Any, settings: Settings, count: int, *, signed: bool = True) -> list[str]:
    """Register `count` versions, each from its own tiny run (no training: the registry only needs
    versions that exist, with file digests recorded as the trainer records them unless not `signed`).
    Returns the run ids, one per version in order."""
    experiment_id = store.ensure_experiment(client, settings)
    if not Registry(client, NAME, Path("unused")).exists():
        client.create_registered_model(NAME)
    run_ids = []
    for _ in range(count):
        run = client.create_run(experiment_id)
        client.log_param(run.info.run_id, "kind", "registry-test")
        tags = {DIGEST_TAG: integrity.encode({"classifier.pkl": "0" * 64})} if signed else None
        client.create_model_version(
            NAME, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags
        )
        run_ids.append(run.info.run_id)
    return run_ids


def _registry(client: Any, settings: Settings, **kwargs: Any) -> Registry:
    return Registry(client, NAME, settings.registry_lock, clock=lambda: T0, **kwargs)


@pytest.fixture
def settings(project: Path) -> Settings:
    return Settings(root=project)


@pytest.fixture
def client(settings: Settings) -> Any:
    return store.connect(settings)


@pytest.fixture
def run_ids(client: Any, settings: Settings) -> list[str]:
    return _add_versions(client, settings, 3)


@pytest.fixture
def registry(client: Any, settings: Settings, run_ids: list[str]) -> Registry:
    return _registry(client, settings)


def test_empty_registry_has_no_versions_champion_or_history(client: Any, settings: Settings) -> None:
    registry = _registry(client, settings)
    assert not registry.exists()
    assert (registry.versions(), registry.champion(), registry.history()) == ([], None, [])
    with pytest.raises(RegistryError, match="has no version 1"):
        registry.promote(1, actor="alice", reason="first")


def test_versions_are_listed_newest_first(registry: Registry, run_ids: list[str]) -> None:
    versions = registry.versions()
    assert [v.version for v in versions] == [3, 2, 1]
    assert [v.run_id for v in versions] == run_ids[::-1]


def test_promote_sets_champion_and_records_the_move(registry: Registry, run_ids: list[str]) -> None:
    move = registry.promote(1, actor="alice", reason="first model", run_id=run_ids[0], expected_champion=None)
    assert registry.champion() == 1
    expected = AliasMove(
        seq=1,
        alias="champion",
        from_version=None,
        to_version=1,
        at=T0.isoformat(timespec="seconds"),
        kind="promote",
        actor="alice",
        reason="first model",
        run_id=run_ids[0],
    )
    assert move == expected
    assert registry.history() == [expected]
    assert [v.aliases for v in registry.versions()] == [[], [], ["champion"]]


def test_a_version_without_file_digests_is_never_made_champion(
    client: Any, settings: Settings, registry: Registry
) -> None:
    _add_versions(client, settings, 1, signed=False)  # v4: what a registry write by hand makes
    with pytest.raises(RegistryError, match="v4 has no recorded file digests"):
        registry.promote(4, actor="mallory", reason="trust me")
    assert registry.champion() is None and registry.history() == []
    # nor brought back by a rollback: the alias stays on a version the services can load
    registry.promote(1, actor="alice", reason="first")
    registry.promote(2, actor="alice", reason="second")
    client.delete_model_version_tag(NAME, "1", DIGEST_TAG)  # its digests removed since
    with pytest.raises(RegistryError, match="v1 has no recorded file digests"):
        registry.rollback(actor="bob")
    assert registry.champion() == 2


def test_stale_expected_champion_is_refused_and_changes_nothing(registry: Registry) -> None:
    registry.promote(1, actor="alice", reason="first")
    registry.promote(2, actor="alice", reason="better", expected_champion=1)
    before = registry.history()
    with pytest.raises(PromotionConflict, match="Champion is now v2, not v1"):
        registry.promote(3, actor="bob", reason="decided against v1", expected_champion=1)
    assert registry.champion() == 2
    assert registry.history() == before


def test_expected_no_champion_conflicts_once_there_is_one(registry: Registry) -> None:
    registry.promote(1, actor="alice", reason="first", expected_champion=None)
    with pytest.raises(PromotionConflict):
        registry.promote(2, actor="bob", reason="first too", expected_champion=None)
    assert registry.champion() == 1


def test_unknown_version_is_refused(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="has no version 9"):
        registry.promote(9, actor="alice", reason="typo")
    with pytest.raises(RegistryError, match="has no version 9"):
        registry.set_challenger(9, actor="alice", reason="typo")
    assert registry.champion() is None
    assert registry.history() == []


def test_promoting_the_champion_again_is_refused(registry: Registry) -> None:
    registry.promote(1, actor="alice", reason="first")
    with pytest.raises(RegistryError, match="already the champion"):
        registry.promote(1, actor="alice", reason="again")
    assert len(registry.history()) == 1


def test_set_challenger_is_recorded_and_cleared_by_its_promotion(registry: Registry) -> None:
    registry.promote(1, actor="alice", reason="first")
    move = registry.set_challenger(2, actor="pipeline", reason="not better", run_id="r2")
    assert (registry.champion(), registry.challenger()) == (1, 2)
    assert (move.alias, move.kind, move.from_version, move.to_version, move.seq) == (
        "challenger",
        "challenger",
        None,
        2,
        2,
    )
    assert registry.set_challenger(3, actor="pipeline", reason="not better").from_version == 2
    registry.promote(3, actor="alice", reason="reviewed by hand")
    assert (registry.champion(), registry.challenger()) == (3, None)
    assert registry.previous_champion() == 1  # challenger moves are not champion moves


def test_rollback_undoes_promotions_one_by_one(registry: Registry) -> None:
    for version in (1, 2, 3):
        registry.promote(version, actor="alice", reason=f"v{version}")
    assert registry.previous_champion() == 2

    back = registry.rollback(actor="bob", reason="v3 misbehaves")
    assert (back.kind, back.from_version, back.to_version, back.actor) == ("rollback", 3, 2, "bob")
    assert back.reason == "v3 misbehaves"
    assert registry.champion() == 2
    assert registry.previous_champion() == 1

    assert registry.rollback(actor="bob").to_version == 1
    assert registry.champion() == 1
    with pytest.raises(RegistryError, match="Nothing to roll back"):
        registry.rollback(actor="bob")
    assert registry.champion() == 1
    assert [(m.kind, m.from_version, m.to_version) for m in registry.history()] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("promote", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
    ]


def test_promotion_after_rollback_stacks_on_the_restored_champion(registry: Registry) -> None:
    registry.promote(1, actor="alice", reason="v1")
    registry.promote(2, actor="alice", reason="v2")
    registry.rollback(actor="bob")
    registry.promote(3, actor="alice", reason="v3")
    assert registry.previous_champion() == 1
    assert registry.rollback(actor="bob").to_version == 1


def test_rollback_with_one_champion_is_refused(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="Nothing to roll back"):
        registry.rollback(actor="bob")
    registry.promote(1, actor="alice", reason="v1")
    with pytest.raises(RegistryError, match="Nothing to roll back"):
        registry.rollback(actor="bob")
    assert registry.champion() == 1


def test_history_is_durable_across_clients(registry: Registry, settings: Settings) -> None:
    registry.promote(1, actor="alice", reason="v1")
    registry.set_challenger(2, actor="pipeline", reason="v2 not better")
    registry.promote(3, actor="alice", reason="v3")
    registry.rollback(actor="bob")
    history = registry.history()

    reopened = Registry(store.connect(settings), NAME, settings.registry_lock)
    assert reopened.history() == history
    assert [m.seq for m in history] == [1, 2, 3, 4]
    assert (reopened.champion(), reopened.challenger(), reopened.previous_champion()) == (1, 2, None)


def test_a_held_lock_makes_the_move_fail_with_an_actionable_message(
    registry: Registry, client: Any, settings: Settings
) -> None:
    impatient = _registry(client, settings, lock_timeout=0.2)
    with (
        FileLock(str(impatient.lock_file)),
        pytest.raises(RegistryError, match=r"Another promotion holds .* try again"),
    ):
        impatient.promote(1, actor="alice", reason="v1")
    assert registry.champion() is None


# --- concurrent promotions ------------------------------------------------------------------------
def _slow_clock() -> datetime:
    """Widens the window between reading the champion and recording the move, so an unserialized
    implementation would let several promotions through."""
    time.sleep(0.05)
    return T0


def _check_one_winner(registry: Registry, outcomes: dict[int, str], contenders: list[int]) -> None:
    winners = [v for v, result in outcomes.items() if result == "promoted"]
    assert len(winners) == 1, outcomes
    assert all(outcomes[v] == "conflict" for v in contenders if v not in winners), outcomes
    assert registry.champion() == winners[0]
    champions = [v.version for v in registry.versions() if "champion" in v.aliases]
    assert champions == winners

    history = registry.history()
    assert [m.seq for m in history] == list(range(1, len(history) + 1))
    champion_moves = [m for m in history if m.alias == "champion"]
    assert [m.to_version for m in champion_moves] == [1, winners[0]]
    for before, after in pairwise(champion_moves):
        assert after.from_version == before.to_version


def _promote_outcome(registry: Registry, version: int) -> str:
    try:
        registry.promote(version, actor=f"worker-{version}", reason="race", expected_champion=1)
    except PromotionConflict:
        return "conflict"
    return "promoted"


def test_concurrent_promotions_in_threads_leave_exactly_one_champion(client: Any, settings: Settings) -> None:
    _add_versions(client, settings, 7)
    first = _registry(client, settings)
    first.promote(1, actor="alice", reason="v1")
    contenders = list(range(2, 8))
    outcomes: dict[int, str] = {}
    barrier = threading.Barrier(len(contenders))

    def contend(version: int) -> None:
        registry = Registry(store.connect(settings), NAME, settings.registry_lock, clock=_slow_clock)
        barrier.wait()
        try:
            outcomes[version] = _promote_outcome(registry, version)
        except Exception as exc:  # reported by the assertions below, not lost with the thread
            outcomes[version] = f"error: {exc!r}"

    threads = [threading.Thread(target=contend, args=(v,)) for v in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == contenders
    _check_one_winner(first, outcomes, contenders)


def _contend_in_process(root: str, version: int, barrier: Any, results: Any) -> None:
    settings = Settings(root=Path(root))
    registry = Registry(store.connect(settings), NAME, settings.registry_lock, clock=_slow_clock)
    barrier.wait()
    results.put((version, _promote_outcome(registry, version)))


def test_concurrent_promotions_in_processes_leave_exactly_one_champion(
    client: Any, settings: Settings
) -> None:
    """What happens in production: the pipeline, a Prefect worker and the console are processes."""
    _add_versions(client, settings, 4)
    first = _registry(client, settings)
    first.promote(1, actor="alice", reason="v1")
    contenders = [2, 3, 4]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(contenders)), ctx.Queue()
    processes = [
        ctx.Process(target=_contend_in_process, args=(str(settings.root), v, barrier, results))
        for v in contenders
    ]
    for process in processes:
        process.start()
    outcomes = dict(results.get(timeout=120) for _ in contenders)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    _check_one_winner(first, outcomes, contenders)
