"""Who a flow run acts for, and the audit row of the registry move a training makes.

A run acts for whoever started it: its `actor` parameter names them (the console, the CLI and the API pass
their signed-in user's name), its `via:` tag says how they proved it. Their role was checked, and
recorded, where they started the run; the run only carries their name on. The daily monitoring acts as
its schedule (`core.identity.roles.schedule`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from prefect.runtime import flow_run

from core.config import Settings
from core.identity.guard import Guard
from core.identity.roles import Action, Principal, schedule
from core.orchestration.flow_runs import VIA_TAG, tag_value
from core.pipeline.chain import Chain
from core.storage.drift_reports import DriftSummary

SCHEDULE: Final = schedule("monitor-and-retrain")


def acting_for(actor: str) -> Principal:
    """The principal a run acts for: the schedule, or the user named by `actor`, proved as the run's
    `via:` tag says ("flow" when it has none). No roles: theirs were checked where the run started."""
    if actor == SCHEDULE.name:
        return SCHEDULE
    via = tag_value(list(flow_run.tags or []), VIA_TAG) or "flow"
    return Principal(name=actor, roles=frozenset(), via=via)


@contextmanager
def registry_move_audited(chain: Chain) -> Iterator[None]:
    """Around the evaluate step: its registry move (register, then promote or make challenger) in the
    audit trail once — entry "flow", origin the run's id — done with what the registry did, or failed
    with the error (which goes on)."""
    guard = Guard(chain.settings, "flow")
    who = acting_for(chain.actor)
    origin = str(flow_run.id or "")  # outside a flow run (a test): the guard writes this host's name
    try:
        yield
    except BaseException as exc:
        guard.record(who, Action.RETRAIN, "model", "", "failed", f"{type(exc).__name__}: {exc}", origin)
        raise
    outcome = chain.evaluated
    assert outcome is not None  # the evaluate step sets it
    target, why = f"model:v{outcome.version}", outcome.decision.summary
    guard.record(who, Action.RETRAIN, target, why, "done", outcome.registry_move, origin)


def drift_report_recorded(settings: Settings, who: Principal, report: DriftSummary) -> None:
    """The drift report a monitoring run made, in the audit trail (entry "flow", origin the run's id)."""
    detail = "; ".join(report.reasons)
    target = f"drift:{report.created_at}"
    Guard(settings, "flow").record(
        who, Action.DRIFT_REPORT, target, "", "done", detail, str(flow_run.id or "")
    )
