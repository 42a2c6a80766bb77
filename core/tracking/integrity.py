"""Model integrity: the SHA-256 of every file of a registered model, recorded when the trainer registers
the version and checked before anything loads it.

Loading a model runs code: MLflow executes the model's code file and unpickles its classifier. Whoever
can write the artifact store could otherwise make every process that loads the champion run theirs. The
digests live in the registry (a model version tag), the files in the artifact store: changing a file,
adding one or removing one is refused, and so is a version without digests (registered before digests
existed, or by someone other than the trainer)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Final, Literal

from core.errors import RakutenError

DIGEST_TAG: Final = "model.sha256"  # a model version tag: {"relative/path": "<sha256 hex>", ...}
_CHUNK: Final = 1 << 20


class ModelIntegrityError(RakutenError):
    """A model version whose files do not match the digests recorded at registration (or has none)."""

    def __init__(self, version: int, reason: str, *, kind: Literal["mismatch", "missing"]) -> None:
        self.version = version
        self.reason = reason
        self.kind: Literal["mismatch", "missing"] = kind  # missing: no digests recorded
        super().__init__(f"v{version} refused: {reason}")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_digests(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative POSIX path → SHA-256), in path order."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): file_digest(p) for p in files}


def encode(digests: dict[str, str]) -> str:
    return json.dumps(dict(sorted(digests.items())), separators=(",", ":"))


def decode(text: str) -> dict[str, str]:
    found = json.loads(text)
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        raise ValueError("not a mapping of file names to digests")
    return found


def verify(folder: Path, recorded: str | None, version: int) -> None:
    """Raise `ModelIntegrityError` unless the files under `folder` are exactly those recorded."""
    if not recorded:
        raise ModelIntegrityError(
            version,
            f"no file digests are recorded for it (tag {DIGEST_TAG}): it was registered before digests "
            "existed or not by the trainer. Retrain to register a version with digests.",
            kind="missing",
        )
    try:
        expected = decode(recorded)
    except ValueError as exc:
        raise ModelIntegrityError(
            version, f"its recorded digests (tag {DIGEST_TAG}) cannot be read: {exc}", kind="missing"
        ) from exc
    found = folder_digests(folder)
    changed = sorted(name for name in expected.keys() & found.keys() if expected[name] != found[name])
    missing = sorted(expected.keys() - found.keys())
    added = sorted(found.keys() - expected.keys())
    problems = [
        *(f"{name} differs from the digest recorded at registration" for name in changed),
        *(f"{name} is missing" for name in missing),
        *(f"{name} was added after registration" for name in added),
    ]
    if problems:
        raise ModelIntegrityError(version, "; ".join(problems), kind="mismatch")
