"""The Review card's headings: each n-gram table names the model, the view and the class it explains —
the champion's answer is not always the text view's."""

from __future__ import annotations

from typing import Any

import pandas as pd

from core.ui.review_view import ModelView, why_titles


def _view(answer: int, text_answer: int) -> ModelView:
    return ModelView(
        version=4,
        top=[(answer, 0.6), (text_answer, 0.2)],
        views={"text": [(text_answer, 0.5)], "image": [(answer, 0.9)]},
        why_answer=[],
        why_label=[],
    )


def _item(source: str, current: int, model_version: Any = pd.NA) -> dict[str, Any]:
    return {"source": source, "current": current, "model_version": model_version}


def test_the_heading_says_the_text_view_answered_otherwise() -> None:
    first, second = why_titles(_item("production", 1280, 3), _view(2522, 1280))
    assert first == (
        "What pushed champion v4's text view towards 2522, the champion's answer "
        "(the text view alone answered 1280)"
    )
    assert second == "What pushed champion v4's text view towards 1280, v3's served answer"


def test_the_heading_when_text_view_and_champion_agree() -> None:
    first, second = why_titles(_item("training", 50), _view(2583, 2583))
    assert first == "What pushed champion v4's text view to 2583 (the champion's answer too)"
    assert second == "What pushed champion v4's text view towards the label 50"


def test_a_served_answer_without_a_recorded_version() -> None:
    _, second = why_titles(_item("production", 10), _view(40, 40))
    assert second.endswith("towards 10, the served answer")
