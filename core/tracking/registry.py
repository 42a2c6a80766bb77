"""Model registry adapter: versions, the `champion` / `challenger` aliases and their history.

Every alias move goes through this class and is recorded in the promotion history, stored as tags of
the registered model (`history.000001`, …) so it lives wherever the registry lives — SQLite locally,
PostgreSQL behind the MLflow server. Moves are serialized by a lock and are compare-and-set: a
promotion decided against champion v3 is refused if v4 became champion meanwhile. An MLflow alias
points at exactly one version and is moved in one statement, so there is never zero or two champions.
"""
# Size: every alias move and its history in one class, so the compare-and-set rule lives in one place.

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from filelock import FileLock, Timeout

from core.config import CHALLENGER_ALIAS, CHAMPION_ALIAS, REGISTERED_MODEL_NAME, Settings
from core.errors import RakutenError
from core.tracking.integrity import DIGEST_TAG

if TYPE_CHECKING:  # MLflow loads when a client is made
    from mlflow import MlflowClient

# Lazy imports: MLflow (~1.5–3 s to import on 2 cores) loads in the calls that use it: the chain's step
# names and the CLI read this module without it.

log = logging.getLogger(__name__)

_HISTORY_PREFIX: Final = "history."
_UNSET: Final[Any] = object()

Kind = Literal["promote", "rollback", "challenger"]


class RegistryError(RakutenError):
    """A registry operation could not be done (unknown version, nothing to roll back, …)."""


class PromotionConflict(RegistryError):
    """The champion changed while this promotion was being decided."""


class NoChampionError(RakutenError):
    """No model has been promoted to champion yet."""

    TRAIN_FIRST = (
        "No champion model yet: run `python -m core pipeline` (or promote a version on the Models page)."
    )


@dataclass(frozen=True)
class AliasMove:
    seq: int
    alias: str
    from_version: int | None
    to_version: int
    at: str
    kind: Kind
    actor: str
    reason: str
    run_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class VersionInfo:
    version: int
    run_id: str | None
    created_at: datetime
    aliases: list[str]
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""


class Registry:
    """One registered model. `client` is an `MlflowClient`; `lock_file` serializes alias moves."""

    def __init__(
        self,
        client: MlflowClient,
        name: str,
        lock_file: Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lock_timeout: float = 60.0,
    ) -> None:
        self.client = client
        self.name = name
        self.lock_file = lock_file
        self.clock = clock
        self.lock_timeout = lock_timeout

    # --- reading -------------------------------------------------------------------------------
    def exists(self) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            return False
        return True

    def versions(self) -> list[VersionInfo]:
        """All versions, newest first."""
        if not self.exists():
            return []
        found = self.client.search_model_versions(f"name='{self.name}'")
        # search_model_versions leaves `aliases` empty (MLflow 3, SQLite and REST stores alike): the
        # registered model's alias map is the one source of truth.
        by_version: dict[int, list[str]] = {}
        for alias, number in (self.client.get_registered_model(self.name).aliases or {}).items():
            by_version.setdefault(int(number), []).append(alias)
        out = [
            VersionInfo(
                version=int(v.version),
                run_id=v.run_id,
                created_at=datetime.fromtimestamp(v.creation_timestamp / 1000, UTC),
                aliases=sorted(by_version.get(int(v.version), [])),
                tags=dict(v.tags or {}),
                source=v.source or "",
            )
            for v in found
        ]
        return sorted(out, key=lambda v: v.version, reverse=True)

    def alias(self, alias: str) -> int | None:
        if not self.exists():
            return None
        aliases = self.client.get_registered_model(self.name).aliases or {}
        value = aliases.get(alias)
        return int(value) if value is not None else None

    def champion(self) -> int | None:
        return self.alias(CHAMPION_ALIAS)

    def challenger(self) -> int | None:
        return self.alias(CHALLENGER_ALIAS)

    def history(self) -> list[AliasMove]:
        """Every recorded alias move, oldest first."""
        if not self.exists():
            return []
        tags = self.client.get_registered_model(self.name).tags or {}
        moves = [AliasMove(**json.loads(v)) for k, v in tags.items() if k.startswith(_HISTORY_PREFIX)]
        return sorted(moves, key=lambda m: m.seq)

    def previous_champion(self) -> int | None:
        """The champion a rollback returns to: promotions stack up, rollbacks pop (like undo)."""
        stack = self._champion_stack()
        return stack[-2] if len(stack) >= 2 else None

    # --- moving aliases ------------------------------------------------------------------------
    def promote(
        self,
        version: int,
        *,
        actor: str,
        reason: str,
        run_id: str | None = None,
        expected_champion: int | None = _UNSET,
    ) -> AliasMove:
        """Make `version` the champion. With `expected_champion`, refuse (`PromotionConflict`) if the
        champion is no longer that version — the gate's comparison would be stale."""
        with self._locked():
            self._check_servable(version)
            current = self.champion()
            if expected_champion is not _UNSET and current != expected_champion:
                raise PromotionConflict(
                    f"Champion is now v{current}, not v{expected_champion} as when v{version} was "
                    "evaluated; evaluate again before promoting."
                )
            if current == version:
                raise RegistryError(f"v{version} is already the champion.")
            self.client.set_registered_model_alias(self.name, CHAMPION_ALIAS, str(version))
            if self.challenger() == version:
                self.client.delete_registered_model_alias(self.name, CHALLENGER_ALIAS)
            return self._record(CHAMPION_ALIAS, current, version, "promote", actor, reason, run_id)

    def set_challenger(
        self, version: int, *, actor: str, reason: str, run_id: str | None = None
    ) -> AliasMove:
        with self._locked():
            self._check_version(version)
            current = self.challenger()
            self.client.set_registered_model_alias(self.name, CHALLENGER_ALIAS, str(version))
            return self._record(CHALLENGER_ALIAS, current, version, "challenger", actor, reason, run_id)

    def rollback(self, *, actor: str, reason: str = "rollback") -> AliasMove:
        """Give the champion alias back to the previous champion."""
        with self._locked():
            current = self.champion()
            target = self.previous_champion()
            if current is None or target is None:
                raise RegistryError("Nothing to roll back to: there has been only one champion so far.")
            self._check_servable(target)
            self.client.set_registered_model_alias(self.name, CHAMPION_ALIAS, str(target))
            return self._record(CHAMPION_ALIAS, current, target, "rollback", actor, reason, None)

    # --- internals -----------------------------------------------------------------------------
    def _champion_stack(self) -> list[int]:
        stack: list[int] = []
        for move in self.history():
            if move.alias != CHAMPION_ALIAS:
                continue
            if move.kind == "rollback":
                if stack:
                    stack.pop()
                if not stack or stack[-1] != move.to_version:
                    stack.append(move.to_version)
            else:
                stack.append(move.to_version)
        return stack

    def _check_version(self, version: int) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(self.name, str(version))
        except MlflowException:
            raise RegistryError(f"{self.name} has no version {version}.") from None

    def _check_servable(self, version: int) -> None:
        """A champion must be loadable: a version without recorded file digests would be refused by every
        service (`core.tracking.integrity`), which would keep serving the old one behind the alias."""
        if DIGEST_TAG not in (self._check_version(version).tags or {}):
            raise RegistryError(
                f"v{version} has no recorded file digests: the prediction service would refuse to load it "
                "and keep serving the current champion. Retrain to register a version with digests."
            )

    def _record(
        self,
        alias: str,
        before: int | None,
        after: int,
        kind: Kind,
        actor: str,
        reason: str,
        run_id: str | None,
    ) -> AliasMove:
        history = self.history()
        seq = (history[-1].seq + 1) if history else 1
        move = AliasMove(
            seq=seq,
            alias=alias,
            from_version=before,
            to_version=after,
            at=self.clock().isoformat(timespec="seconds"),
            kind=kind,
            actor=actor,
            reason=reason[:2000],
            run_id=run_id,
        )
        self.client.set_registered_model_tag(self.name, f"{_HISTORY_PREFIX}{seq:06d}", move.to_json())
        log.info("%s: %s v%s → v%s (%s by %s)", self.name, alias, before, after, kind, actor)
        return move

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_file), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise RegistryError(
                f"Another promotion holds {self.lock_file} for over {self.lock_timeout:.0f} s; try again."
            ) from None
        try:
            yield
        finally:
            lock.release()


def open_registry(settings: Settings, client: MlflowClient | None = None) -> Registry:
    """The platform's registered model in the store `settings` name (`client`: one already connected)."""
    from core.tracking.store import connect

    return Registry(client or connect(settings), REGISTERED_MODEL_NAME, settings.registry_lock)
