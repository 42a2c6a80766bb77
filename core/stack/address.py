"""Where the local stack listens, recorded in `<root>/.stack/stack.json` while it runs.

`python -m core up` writes it (atomically, with supervisord's configuration) and its stop removes it: a
command run in another shell — without the variables `up` was started with — finds the stack's ports
there. What a command's own settings say (environment, `.env`, arguments) wins over the record.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Final

from core.config import Settings
from core.io import write_text
from core.stack.programs import StackPaths

log = logging.getLogger(__name__)

# The settings that say where the stack's programs listen.
FIELDS: Final = ("prefect_port", "api_host", "api_port", "console_port")


@dataclass(frozen=True)
class StackAddress:
    prefect_port: int
    api_host: str
    api_port: int
    console_port: int

    @classmethod
    def of(cls, settings: Settings) -> StackAddress:
        return cls(settings.prefect_port, settings.api_host, settings.api_port, settings.console_port)

    def applied_to(self, settings: Settings) -> Settings:
        """`settings` pointed at this address, except where they set a port (or the API's host) themselves."""
        unset = {name: getattr(self, name) for name in FIELDS if name not in settings.model_fields_set}
        return settings.model_copy(update=unset) if unset else settings


def write_address(paths: StackPaths, address: StackAddress) -> None:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    write_text(paths.address, json.dumps(asdict(address) | {"started_at": started}, indent=2) + "\n")


def read_address(paths: StackPaths) -> StackAddress | None:
    """The recorded address; None when there is none (or it cannot be read: the defaults apply then)."""
    try:
        found = json.loads(paths.address.read_text(encoding="utf-8"))
        ports = [int(found[name]) for name in ("prefect_port", "api_port", "console_port")]
        return StackAddress(ports[0], str(found["api_host"]), ports[1], ports[2])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring %s, unreadable: %s", paths.address, exc)
        return None


def remove_address(paths: StackPaths) -> None:
    paths.address.unlink(missing_ok=True)
