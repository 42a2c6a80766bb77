"""The promotion gate's rules, one by one: what promotes a version and what the reasons say."""

import pytest

from core.params import PromotionParams
from core.tracking.gate import Candidate, decide

RULES = PromotionParams(margin=0.002, min_weighted_f1=0.5, max_zero_f1_classes=0, min_behaviour_pass_rate=0.9)


def test_first_model_needs_only_the_minimum_checks() -> None:
    decision = decide(Candidate(0.61), None, RULES)
    assert decision.promote
    assert (decision.candidate_f1, decision.champion_f1) == (0.61, None)
    assert "no current champion" in decision.reasons
    assert "weighted F1 0.6100 ≥ minimum 0.5000" in decision.reasons
    assert decision.summary.startswith("promoted: ")


def test_below_minimum_f1_is_refused_even_without_champion() -> None:
    decision = decide(Candidate(0.4321), None, RULES)
    assert not decision.promote
    assert decision.reasons == ["weighted F1 0.4321 < minimum 0.5000"]  # only what failed
    assert decision.summary == "not promoted: weighted F1 0.4321 < minimum 0.5000"


def test_exactly_the_minimum_f1_passes() -> None:
    assert decide(Candidate(0.5), None, RULES).promote


def test_zero_f1_classes_beyond_the_allowance_are_refused() -> None:
    decision = decide(Candidate(0.8, zero_f1_classes=[1280, 2705]), None, RULES)
    assert not decision.promote
    assert decision.reasons == ["2 classes at F1 = 0 (1280, 2705)"]


def test_zero_f1_classes_within_the_allowance_pass_and_are_reported() -> None:
    rules = RULES.model_copy(update={"max_zero_f1_classes": 2})
    decision = decide(Candidate(0.8, zero_f1_classes=[1280, 2705]), None, rules)
    assert decision.promote
    assert "2 classes at F1 = 0 (allowed)" in decision.reasons


def test_zero_f1_reason_lists_at_most_eight_codes() -> None:
    codes = list(range(10, 20))
    (reason,) = decide(Candidate(0.8, zero_f1_classes=codes), None, RULES).reasons
    assert reason == "10 classes at F1 = 0 (10, 11, 12, 13, 14, 15, 16, 17)"


def test_low_behaviour_pass_rate_is_refused() -> None:
    decision = decide(Candidate(0.8, behaviour_pass_rate=0.85), None, RULES)
    assert not decision.promote
    assert decision.reasons == ["behavioural checks 85% < required 90%"]
    assert decide(Candidate(0.8, behaviour_pass_rate=0.9), None, RULES).promote


def test_beating_the_champion_by_the_margin_promotes() -> None:
    decision = decide(Candidate(0.70), 0.69, RULES)
    assert decision.promote
    assert decision.champion_f1 == 0.69
    assert "beats champion: 0.7000 vs champion 0.6900 (+0.0100, margin 0.0020)" in decision.reasons


def test_exactly_champion_plus_margin_promotes() -> None:
    rules = RULES.model_copy(update={"margin": 0.25})  # 0.5 + 0.25 is exact in binary floating point
    assert decide(Candidate(0.75), 0.5, rules).promote


@pytest.mark.parametrize(
    ("candidate", "delta"),
    [(0.69, "+0.0000"), (0.691, "+0.0010"), (0.64, "-0.0500")],
    ids=["tie", "inside-margin", "worse"],
)
def test_not_beating_the_champion_by_the_margin_is_refused(candidate: float, delta: str) -> None:
    decision = decide(Candidate(candidate), 0.69, RULES)
    assert not decision.promote
    assert decision.reasons == [
        f"does not beat champion: {candidate:.4f} vs champion 0.6900 ({delta}, margin 0.0020)"
    ]


def test_every_failed_check_is_reported() -> None:
    decision = decide(Candidate(0.3, zero_f1_classes=[10], behaviour_pass_rate=0.5), 0.6, RULES)
    assert not decision.promote
    assert decision.reasons == [
        "weighted F1 0.3000 < minimum 0.5000",
        "1 classes at F1 = 0 (10)",
        "behavioural checks 50% < required 90%",
        "does not beat champion: 0.3000 vs champion 0.6000 (-0.3000, margin 0.0020)",
    ]


def test_a_promotion_lists_every_passed_check() -> None:
    decision = decide(Candidate(0.8, behaviour_pass_rate=0.95), 0.7, RULES)
    assert decision.reasons == [
        "weighted F1 0.8000 ≥ minimum 0.5000",
        "no class at F1 = 0",
        "behavioural checks 95%",
        "beats champion: 0.8000 vs champion 0.7000 (+0.1000, margin 0.0020)",
    ]
