"""The promotion gate, as a pure function: candidate and champion scores in, a decision with reasons out.

A version becomes champion only if every check passes; the reasons say which check decided, so the
promotion history and the console can show *why* a model was or was not promoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.params import PromotionParams


@dataclass(frozen=True)
class Candidate:
    """What the gate needs to know about a new version (all measured on the same evaluation rows)."""

    weighted_f1: float
    zero_f1_classes: list[int] = field(default_factory=list)
    behaviour_pass_rate: float = 1.0


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]
    candidate_f1: float
    champion_f1: float | None

    @property
    def summary(self) -> str:
        verdict = "promoted" if self.promote else "not promoted"
        return f"{verdict}: " + "; ".join(self.reasons)


def decide(candidate: Candidate, champion_f1: float | None, rules: PromotionParams) -> Decision:
    """Promote iff the candidate passes the minimum checks and beats the champion by `rules.margin`
    (weighted F1 on the same rows). With no champion yet, the minimum checks alone decide."""
    failed: list[str] = []
    passed: list[str] = []
    f1 = candidate.weighted_f1
    ok = f1 >= rules.min_weighted_f1
    (passed if ok else failed).append(
        f"weighted F1 {f1:.4f} {'≥' if ok else '<'} minimum {rules.min_weighted_f1:.4f}"
    )
    zeros = candidate.zero_f1_classes
    if len(zeros) > rules.max_zero_f1_classes:
        failed.append(f"{len(zeros)} classes at F1 = 0 ({', '.join(map(str, zeros[:8]))})")
    else:
        passed.append("no class at F1 = 0" if not zeros else f"{len(zeros)} classes at F1 = 0 (allowed)")
    rate = candidate.behaviour_pass_rate
    if rate < rules.min_behaviour_pass_rate:
        failed.append(f"behavioural checks {rate:.0%} < required {rules.min_behaviour_pass_rate:.0%}")
    else:
        passed.append(f"behavioural checks {rate:.0%}")
    if champion_f1 is None:
        passed.append("no current champion")
    else:
        needed = champion_f1 + rules.margin
        delta = f1 - champion_f1
        text = f"{f1:.4f} vs champion {champion_f1:.4f} ({delta:+.4f}, margin {rules.margin:.4f})"
        (passed if f1 >= needed else failed).append(
            ("beats champion: " if f1 >= needed else "does not beat champion: ") + text
        )
    return Decision(not failed, failed or passed, f1, champion_f1)


def refused(decision: Decision, why: str) -> Decision:
    """The decision after a promotion the registry refused (the champion moved meanwhile)."""
    return Decision(False, [why], decision.candidate_f1, decision.champion_f1)


def champion_after(decision: Decision, champion: int | None, version: int) -> int | None:
    """The champion once the decision is applied: the new version if promoted, else the one before."""
    return version if decision.promote else champion
