"""What the inference log keeps of an answer: each view's own code, the top codes, and which photos ride
along for review (low confidence, views that disagree, a sample every worker agrees on)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.serving.predictor import Answer, PhotoCheck, Product, Ranked, ViewAnswer
from core.serving.records import PhotoPolicy, records, sampled
from tests.core.serving.conftest import picture

PHOTO = picture()
POLICY = PhotoPolicy(confidence=0.5, share=0.0)


def answer(probability: float, text: int | None = 10, image: int | None = 10) -> Answer:
    top = (Ranked(10, "a", probability), *(Ranked(c, "x", 0.012345) for c in (40, 50, 60, 1140, 1160)))
    views = tuple(
        ViewAnswer(name, (Ranked(code, "v", 0.9),))  # type: ignore[arg-type]
        for name, code in (("text", text), ("image", image))
        if code is not None
    )
    return Answer(10, "a", probability, top, ("text", "image"), views=views)


def kept(a: Answer, product: Product | None = None, policy: PhotoPolicy = POLICY) -> bool:
    product = product or Product("Titre", "", PHOTO)
    (record,) = records("product", 1, [product], [a], 0.01, "req-1", photos=policy)
    return record.photo is not None


def test_review_fields_come_from_the_answer() -> None:
    (record,) = records(
        "product", 1, [Product("Titre", "Une description", PHOTO)], [answer(0.9, 10, 40)], 0, "r"
    )
    assert (record.text_code, record.image_code, record.description) == (10, 40, "Une description")
    top = json.loads(record.top_codes or "")
    assert len(top) == 5 and top[0] == [10, 0.9] and top[1] == [40, 0.0123]  # 5 codes, 4 decimals
    (text_only,) = records("text", 1, [Product("Titre")], [answer(0.9, 10, None)], 0, "r")
    assert text_only.image_code is None and text_only.description is None and text_only.photo is None


def test_photos_kept_below_the_confidence_threshold() -> None:
    assert kept(answer(0.49))
    assert not kept(answer(0.51))


def test_photos_kept_when_text_and_photo_views_disagree() -> None:
    assert kept(answer(0.95, text=10, image=40))
    assert not kept(answer(0.95, text=10, image=None))  # only one view answered: nothing to disagree


def test_photos_unlike_the_training_photos_are_kept_and_marked() -> None:
    sure = answer(0.95)
    unfamiliar = dataclasses.replace(sure, photo=PhotoCheck(False, 0.8, 0.4, counted=False))
    familiar = dataclasses.replace(sure, photo=PhotoCheck(True, 0.2, 0.4, counted=True))
    assert kept(unfamiliar) and not kept(familiar)
    marks = [
        r.photo_unfamiliar
        for r in records("product", 1, [Product("T", "", PHOTO)] * 3, [unfamiliar, familiar, sure], 0, "r")
    ]
    assert marks == [True, False, None]  # None: a model without the photo guard


def test_no_photo_no_policy_nothing_kept() -> None:
    assert not kept(answer(0.1), Product("Titre", "", None))
    (record,) = records("product", 1, [Product("Titre", "", PHOTO)], [answer(0.1)], 0, "r")  # no policy
    assert record.photo is None  # drift references and simulations keep no photo


def test_the_sample_is_deterministic_and_of_the_asked_share() -> None:
    ids = [f"req-{i}" for i in range(4000)]
    first = [sampled(rid, 0, 0.25) for rid in ids]
    assert first == [sampled(rid, 0, 0.25) for rid in ids]  # every worker process decides the same
    assert sum(first) / len(ids) == pytest.approx(0.25, abs=0.03)
    assert not any(sampled(rid, 0, 0.0) for rid in ids) and all(sampled(rid, 0, 1.0) for rid in ids)
    assert [sampled("req-7", i, 0.5) for i in range(64)] != [sampled("req-7", 0, 0.5)] * 64  # by item too
    assert kept(answer(0.99), policy=PhotoPolicy(0.5, 1.0))  # confident and agreeing, but sampled
