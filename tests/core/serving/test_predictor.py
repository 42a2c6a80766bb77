"""`predict`: the one prediction function of the API and the console's in-process mode."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.categories import names
from core.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError
from core.models.classifier import ProductClassifier
from core.serving.predictor import (
    ImageLimits,
    NoImageModelError,
    Product,
    predict,
)
from tests.core.serving.conftest import picture, product_photo, unfamiliar_photo

LIMITS = ImageLimits(max_bytes=1_000_000, max_pixels=4_000_000)
POOL = Product("Piscine tubulaire Intex 366 x 122 cm", "Avec pompe de filtration et bâche")


def test_text_answer_is_ranked_named_and_matches_the_batch_path(classifier: ProductClassifier) -> None:
    (answer,) = predict(classifier, [POOL], LIMITS, k=5)
    assert len(answer.top_k) == 5
    probabilities = [r.probability for r in answer.top_k]
    assert probabilities == sorted(probabilities, reverse=True)
    assert answer.code == answer.top_k[0].code and answer.category == names()[answer.code]
    assert answer.modalities == ("text",) and answer.image is None
    # the same numbers as the DataFrame path the batch pipeline uses
    frame = pd.DataFrame({"designation": [POOL.designation], "description": [POOL.description]})
    expected = classifier.predict_proba(frame)[0]
    assert answer.probability == pytest.approx(expected.max())
    assert answer.code == int(classifier.classes[expected.argmax()])


def test_products_keep_their_order_and_k_is_honoured(classifier: ProductClassifier) -> None:
    products = [Product(f"Livre de poche roman policier {i}") for i in range(3)] + [POOL]
    answers = predict(classifier, products, LIMITS, k=3)
    assert len(answers) == 4 and all(len(a.top_k) == 3 for a in answers)
    assert answers[3].code == predict(classifier, [POOL], LIMITS)[0].code


def test_image_alone_and_fused_with_text(classifier: ProductClassifier) -> None:
    image = product_photo()
    only, fused = predict(classifier, [Product(image=image), dataclasses.replace(POOL, image=image)], LIMITS)
    assert only.modalities == ("image",) and fused.modalities == ("text", "image")
    assert [v.view for v in fused.views] == ["text", "image"] and [v.view for v in only.views] == ["image"]
    # A photo alone is answered by the image view: its own answer is the answer.
    assert only.views[0].top_k[0] == only.top_k[0]
    features, _ = classifier.encode_images([image])
    assert fused.views[1].top_k[0].probability == pytest.approx(
        classifier.image_proba(features)[0].max(), rel=1e-4
    )
    assert only.image is not None and (only.image.width, only.image.height) == (500, 500)
    assert only.image.n_bytes == len(image) and 0 <= only.image.brightness <= 1
    text_only = predict(classifier, [POOL], LIMITS)[0]
    assert fused.probability != pytest.approx(text_only.probability)  # the image moved the answer
    assert fused.photo is not None and fused.photo.familiar and fused.photo.counted
    assert text_only.photo is None


def test_an_unfamiliar_photo_is_shown_set_aside_and_the_text_answers(classifier: ProductClassifier) -> None:
    fused, text_only = predict(
        classifier, [dataclasses.replace(POOL, image=unfamiliar_photo(2)), POOL], LIMITS
    )
    assert fused.photo is not None and not fused.photo.familiar and not fused.photo.counted
    assert fused.photo.distance > fused.photo.threshold
    assert fused.modalities == ("text",)
    assert [(v.view, v.counted) for v in fused.views] == [("text", True), ("image", False)]
    assert fused.top_k == text_only.top_k


def test_dark_images_read_darker(classifier: ProductClassifier) -> None:
    dark, light = predict(
        classifier,
        [Product(image=picture(colour=(10, 10, 10))), Product(image=picture(colour=(240, 240, 240)))],
        LIMITS,
    )
    assert dark.image and light.image and dark.image.brightness < 0.1 < 0.9 < light.image.brightness


def test_image_limits_are_checked_before_decoding(classifier: ProductClassifier) -> None:
    with pytest.raises(ImageTooLargeError, match="bytes"):
        predict(classifier, [Product(image=picture())], ImageLimits(max_bytes=100, max_pixels=10**6))
    with pytest.raises(ImageTooLargeError, match="pixels"):
        predict(classifier, [Product(image=picture(size=(400, 300)))], ImageLimits(10**6, max_pixels=10_000))


def test_bad_images_raise_specific_errors(classifier: ProductClassifier) -> None:
    with pytest.raises(UnsupportedImageError):
        predict(classifier, [Product(image=b"GIF89a not really")], LIMITS)
    with pytest.raises(UnsupportedImageError):
        predict(classifier, [Product(image=picture("GIF"))], LIMITS)  # a real GIF: not accepted
    with pytest.raises(ImageDecodeError) as truncated:
        predict(classifier, [Product(image=picture()[:300])], LIMITS)
    assert not isinstance(truncated.value, UnsupportedImageError | ImageTooLargeError)


def test_a_product_needs_a_title_or_an_image(classifier: ProductClassifier) -> None:
    with pytest.raises(ValueError, match="designation"):
        predict(classifier, [POOL, Product(designation="")], LIMITS)


def test_image_only_needs_an_image_model(classifier: ProductClassifier) -> None:
    text_only = dataclasses.replace(classifier, image=None)
    with pytest.raises(NoImageModelError, match="title"):
        predict(text_only, [Product(image=picture())], LIMITS)
    # with a title, the image is simply not used
    (answer,) = predict(text_only, [dataclasses.replace(POOL, image=picture())], LIMITS)
    assert answer.modalities == ("text",)


def test_fast_text_scoring_equals_the_sklearn_pipeline(classifier: ProductClassifier) -> None:
    from core.features.text import model_text

    frame = pd.DataFrame(
        {
            "designation": ["Piscine Intex", "Livre de cuisine", "Figurine Funko Pop", "x"],
            "description": ["<b>pompe</b> &amp; bâche", "", "Star Wars", None],
        }
    )
    text = model_text(frame)
    fast = classifier.text.decision_function(text)
    reference = np.asarray(classifier.text.pipeline.decision_function(text[["title", "text"]]))
    np.testing.assert_allclose(fast, reference, rtol=1e-12, atol=1e-12)


def test_batch_pool_gives_the_same_answers_split_across_processes(
    classifier: ProductClassifier, tmp_path: Path
) -> None:
    from core.io import save_model
    from core.serving.batch import MIN_ROWS, BatchPool
    from core.serving.holder import ServedModel

    file = tmp_path / "v1" / "classifier.pkl"
    save_model(classifier, file)
    model = ServedModel(classifier, "m", 1, "champion", None, {}, datetime.now(UTC), "registry", file)
    products = [
        Product(f"Produit numéro {i} piscine livre figurine"[: 10 + i % 30], f"desc {i}")
        for i in range(MIN_ROWS + 37)
    ]
    alone = predict(classifier, products, LIMITS)
    pool = BatchPool(1).start(model)
    try:
        split = predict(classifier, products, LIMITS, text_proba=partial(pool.text_proba, model))
    finally:
        pool.close()
    assert [a.code for a in split] == [a.code for a in alone]
    np.testing.assert_allclose([a.probability for a in split], [a.probability for a in alone], rtol=1e-12)
