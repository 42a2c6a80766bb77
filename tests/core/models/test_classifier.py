"""`ProductClassifier`: raw fields (HTML and all) and images in, each view's and the fused answer out."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.data.demo.product_images import product_jpeg, scene_jpeg
from core.errors import ImageDecodeError
from core.features.image import get_encoder, open_image
from core.features.text import model_text
from core.models.classifier import ProductClassifier
from core.models.image import ImageModel
from core.models.novelty import NoveltyGuard
from core.models.stacking import fit_stacking
from core.models.text import TextModel
from core.params import ImageParams, NoveltyParams, TextParams
from tests.core.models.test_text_model import CODES
from tests.core.models.test_text_model import products as synthetic_products


@pytest.fixture(scope="module")
def jpegs() -> dict[int, list[bytes]]:
    rng = np.random.default_rng(0)
    return {code: [product_jpeg(code, rng) for _ in range(12)] for code in CODES}


@pytest.fixture(scope="module")
def classifier(jpegs: dict[int, list[bytes]]) -> ProductClassifier:
    raw, y = synthetic_products(300, seed=0)
    text = TextModel(TextParams(), seed=0).fit(model_text(raw), y)
    encoder = get_encoder("colour_edge")
    codes = [code for code, items in jpegs.items() for _ in items]
    features = np.stack([encoder.encode(open_image(b)) for items in jpegs.values() for b in items])
    image = ImageModel(ImageParams(), text.classes_, seed=0).fit(features, np.array(codes))
    # Meta-models fitted on rows pairing a text and a photo of the same class (in-sample probabilities:
    # enough for these tests, which are about how answers are put together, not about their quality).
    raw_t, y_t = synthetic_products(600, seed=1)
    pick = np.concatenate([np.flatnonzero(y_t == code)[: len(jpegs[code])] for code in jpegs])
    y = y_t[pick]
    assert y.tolist() == codes
    probas = {
        "tfidf": text.predict_proba(model_text(raw_t.iloc[pick])),
        "image": image.predict_proba(features),
    }
    every = np.ones(len(y), dtype=bool)
    fusion = fit_stacking(
        text.classes_,
        ("tfidf", "image"),
        probas,
        {"tfidf": every, "image": every},
        y,
        keys=[("tfidf",), ("tfidf", "image")],
        Cs=[1.0],
        min_rows=10,
        seed=0,
    )
    return ProductClassifier(text=text, image=image, encoder=encoder.name, fusion=fusion)


def _frame(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["designation", "description"])


def test_raw_html_text_scores_like_its_clean_version(classifier: ProductClassifier) -> None:
    raw = _frame(
        ("<b>PISCINE</b> Hors-Sol &amp; Spa", "<p>Filtration&nbsp;incluse<br/>B&acirc;che</p>"),
        ("Perceuse   visseuse", float("nan")),  # type: ignore[arg-type]
    )
    clean = _frame(("piscine hors-sol & spa", "filtration incluse bâche"), ("perceuse visseuse", ""))
    proba = classifier.predict_proba(raw)
    assert proba.shape == (2, len(CODES))
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.allclose(proba, classifier.predict_proba(clean))
    assert classifier.classes[proba.argmax(1)].tolist() == [2583, 2585]


def test_description_column_is_optional(classifier: ProductClassifier) -> None:
    titles = pd.DataFrame({"designation": ["Console portable", "Housse de coussin"]})
    assert classifier.predict(titles)["prdtypecode"].tolist() == [60, 1920]
    with pytest.raises(ValueError, match="designation"):
        classifier.predict_proba(pd.DataFrame({"description": ["no title"]}))


def test_image_bytes_are_fused_only_where_given(
    classifier: ProductClassifier, jpegs: dict[int, list[bytes]]
) -> None:
    products = _frame(("Lot neuf", ""), ("Lot neuf", ""), ("Lot neuf", ""))
    images = [jpegs[2583][0], None, jpegs[60][0]]
    fused = classifier.predict_proba(products, images=images)
    text_only = classifier.text_proba(products)
    assert np.allclose(classifier.predict_proba(products), text_only)  # no images: text alone
    assert np.allclose(fused[1], text_only[1])  # the product without image keeps its text scores
    assert not np.allclose(fused[0], text_only[0])
    features, ok = classifier.encode_images(images)
    assert ok.tolist() == [True, False, True] and not features[1].any()
    views = classifier.views(model_text(products), features, ok)
    assert np.allclose(fused, views.fused)
    assert views.answered(0) == ("tfidf", "image") and views.answered(1) == ("tfidf",)
    assert np.allclose(views.probas["image"][0], classifier.image_proba(features[:1])[0])
    assert np.allclose(views.probas["tfidf"], classifier.text.predict_proba(model_text(products)))


def test_image_paths_work_like_bytes(
    classifier: ProductClassifier, jpegs: dict[int, list[bytes]], tmp_path
) -> None:
    path = tmp_path / "image_1_product_2.jpg"
    path.write_bytes(jpegs[1920][1])
    products = _frame(("Plaid", ""))
    by_path = classifier.predict_proba(products, images=[path])
    assert np.allclose(by_path, classifier.predict_proba(products, images=[jpegs[1920][1]]))
    assert np.allclose(by_path, classifier.predict_proba(products, images=[str(path)]))


def test_corrupt_upload_raises_image_decode_error(classifier: ProductClassifier) -> None:
    corrupt = b"\xff\xd8\xff\xe0 not really a jpeg"
    with pytest.raises(ImageDecodeError, match="JPEG or PNG") as caught:
        classifier.predict_proba(_frame(("Console", "")), images=[corrupt])
    assert caught.value.source == f"upload ({len(corrupt)} bytes)"


def test_missing_image_file_raises_image_decode_error(classifier: ProductClassifier, tmp_path) -> None:
    with pytest.raises(ImageDecodeError, match="no such file"):
        classifier.predict_proba(_frame(("Console", "")), images=[tmp_path / "absent.jpg"])


def test_text_only_classifier_ignores_images(
    classifier: ProductClassifier, jpegs: dict[int, list[bytes]]
) -> None:
    text_only = ProductClassifier(
        text=classifier.text, image=None, encoder="colour_edge", fusion=classifier.fusion
    )
    products = _frame(("Manette console", ""))
    assert np.allclose(
        text_only.predict_proba(products, images=[jpegs[60][0]]), classifier.text_proba(products)
    )


def test_answers_and_top_k_are_ordered(classifier: ProductClassifier) -> None:
    products = _frame(("Piscine spa", ""), ("Perceuse scie batterie", ""), ("Coussin plaid lin", ""))
    proba = classifier.predict_proba(products)
    answers = classifier.answers(proba, index=pd.Index([7, 8, 9]))
    assert answers.index.tolist() == [7, 8, 9]
    assert answers["prdtypecode"].tolist() == [2583, 2585, 1920]
    assert answers["category"].map(lambda name: name != "unknown").all()
    assert np.allclose(answers["confidence"], proba.max(axis=1))

    top = classifier.top_k(proba, k=3)
    assert [len(row) for row in top] == [3, 3, 3]
    for row, probs, answer in zip(top, proba, answers["prdtypecode"], strict=True):
        scores = [p for _, p in row]
        assert scores == sorted(scores, reverse=True)
        assert row[0][0] == answer
        assert all(isinstance(code, int) and code in CODES for code, _ in row)
        assert len({code for code, _ in row}) == 3
        assert scores[0] == pytest.approx(probs.max())
    assert len(classifier.top_k(proba, k=10)[0]) == len(CODES)  # k above the class count: all of them


def test_a_photo_without_a_title_is_answered_by_the_image_view(
    classifier: ProductClassifier, jpegs: dict[int, list[bytes]]
) -> None:
    features, ok = classifier.encode_images([jpegs[2583][2], jpegs[60][3]])
    text = model_text(_frame(("Piscine", ""), ("", "")))
    views = classifier.views(text, features, ok, has_text=np.array([True, False]))
    assert views.answered(1) == ("image",)
    assert np.allclose(views.fused[1], classifier.image_proba(features[1:])[0])
    assert views.answered(0) == ("tfidf", "image")


@pytest.fixture(scope="module")
def guarded(classifier: ProductClassifier) -> ProductClassifier:
    rng = np.random.default_rng(4)  # the training photos: drawings of these classes, as many as a demo has
    features, _ = classifier.encode_images([product_jpeg(code, rng) for code in CODES for _ in range(100)])
    guard = NoveltyGuard.fit(features, NoveltyParams(quantile=0.99, k=3), seed=0)
    return replace(classifier, novelty=guard)


def test_an_unfamiliar_photo_abstains_and_the_text_answers(guarded: ProductClassifier) -> None:
    rng = np.random.default_rng(5)
    scenes = [scene_jpeg(rng) for _ in range(4)]
    products = _frame(*[("Piscine tubulaire hors-sol", "")] * 4)
    features, ok = guarded.encode_images(scenes)
    views = guarded.views(model_text(products), features, ok)
    assert views.unfamiliar is not None and views.unfamiliar.all()
    assert views.set_aside is not None and views.set_aside.all()
    assert all(views.answered(i) == ("tfidf",) for i in range(4))
    assert np.allclose(views.fused, guarded.text_proba(products))
    assert (views.photo_distance > guarded.novelty.threshold).all()  # type: ignore[union-attr, operator]
    # the photo view still ran (its answer is shown beside the fused one), it only did not count
    assert views.probas["image"] is not None and views.ran("image").all()
    # without the guard the same photos pull the answer away from the text's
    unguarded = guarded.views(model_text(products), features, ok, guard=False)
    assert unguarded.set_aside is None and unguarded.answered(0) == ("tfidf", "image")
    assert not np.allclose(unguarded.fused, views.fused)


def test_familiar_photos_still_count(guarded: ProductClassifier) -> None:
    rng = np.random.default_rng(6)
    drawings = [product_jpeg(code, rng) for code in CODES for _ in range(3)]
    features, ok = guarded.encode_images(drawings)
    products = _frame(*[("Lot neuf", "")] * len(drawings))
    views = guarded.views(model_text(products), features, ok)
    assert views.set_aside is not None and views.set_aside.mean() <= 0.1
    assert views.answered(0) == ("tfidf", "image") or views.set_aside[0]


def test_an_unfamiliar_photo_without_a_title_still_answers_but_is_flagged(guarded: ProductClassifier) -> None:
    features, ok = guarded.encode_images([scene_jpeg(np.random.default_rng(7))])
    views = guarded.views(model_text(_frame(("", ""))), features, ok, has_text=np.array([False]))
    assert views.answered(0) == ("image",)  # nothing to fall back on
    assert views.photo_unfamiliar(0) and not views.photo_set_aside(0)


def test_a_model_from_before_the_guard_loads_without_one(classifier: ProductClassifier) -> None:
    state = dict(classifier.__dict__)
    state.pop("novelty")
    old = ProductClassifier.__new__(ProductClassifier)
    old.__setstate__(state)
    assert old.novelty is None
    features, ok = old.encode_images([scene_jpeg(np.random.default_rng(8))])
    views = old.views(model_text(_frame(("Piscine", ""))), features, ok)
    assert views.photo_distance is None and views.answered(0) == ("tfidf", "image")
