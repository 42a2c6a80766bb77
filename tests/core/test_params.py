"""params.yaml ↔ `Params`: the committed file and the code agree, and a bad value fails early by name."""

from pathlib import Path

import pytest
import yaml

from core.params import PARAMS_FILE, Params, ParamsError, load_params

COMMITTED = Path(__file__).resolve().parents[2] / PARAMS_FILE


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / PARAMS_FILE
    path.write_text(text, encoding="utf-8")
    return path


def test_committed_file_equals_the_code_defaults() -> None:
    # Without params.yaml the code's defaults apply: they must be the values DVC sees in the file —
    # but for the image encoder: the file asks for `auto` (the pretrained encoder when the vision extra
    # is installed), the code falls back to the light one (a project without params.yaml, the tests).
    committed = load_params(COMMITTED)
    assert committed.image.encoder == "auto" and Params().image.encoder == "colour_edge"
    assert committed.model_copy(update={"image": Params().image}) == Params()


def test_committed_file_writes_out_every_key() -> None:
    raw = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    written = Params.model_validate(raw).flat().keys()

    def keys(prefix: str, value: object) -> set[str]:
        if not isinstance(value, dict):
            return {prefix}
        return {k for key, inner in value.items() for k in keys(f"{prefix}.{key}" if prefix else key, inner)}

    keys_in_file = keys("", raw)
    assert keys_in_file == set(written) == set(Params().flat())


def test_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_params(tmp_path / "absent.yaml") == Params()


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    params = load_params(_write(tmp_path, "text:\n  C: 2.0\nseed: 7\n"))
    assert (params.text.C, params.seed) == (2.0, 7)
    assert params.text.word_ngram_max == Params().text.word_ngram_max
    assert params.promotion == Params().promotion


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("text:\n  C: -1\n", "text.C"),
        ("split:\n  test_size: 0.9\n", "split.test_size"),
        ("image:\n  max_iter: many\n", "image.max_iter"),
        ("promotion:\n  min_weighted_f1: 1.5\n", "promotion.min_weighted_f1"),
        ("evaluate:\n  top_k: three\n", "evaluate.top_k"),
    ],
)
def test_invalid_value_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ParamsError, match="Invalid value in") as caught:
        load_params(_write(tmp_path, text))
    assert f"{key}:" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [("text:\n  c: 1.0\n", "text.c"), ("learning_rate: 0.1\n", "learning_rate")],
)
def test_unknown_key_is_refused(tmp_path: Path, text: str, key: str) -> None:
    # A typo (`c` for `C`) must not silently train with the default.
    with pytest.raises(ParamsError) as caught:
        load_params(_write(tmp_path, text))
    assert f"{key}: Extra inputs are not permitted" in str(caught.value)


@pytest.mark.parametrize("text", ["- a\n- list\n", "text: [unclosed\n"])
def test_unreadable_or_non_mapping_file_raises(tmp_path: Path, text: str) -> None:
    with pytest.raises(ParamsError, match=PARAMS_FILE):
        load_params(_write(tmp_path, text))


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_params(_write(tmp_path, "")) == Params()


def test_params_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        Params().text.C = 3.0  # type: ignore[misc]


def test_flat_keys_are_dotted_sections() -> None:
    flat = Params().flat()
    assert flat["seed"] == 42
    assert flat["text.C"] == [0.25, 0.5, 1.0]  # candidates, searched by cross-validation
    assert flat["split.holdout"] == 0.1 and flat["split.folds"] == 3
    assert flat["evaluate.top_k"] == [3, 5]
    assert flat["promotion.min_behaviour_pass_rate"] == 0.9
    # One entry per leaf: no section appears as a value of its own.
    assert not any(isinstance(v, dict) for v in flat.values())
    sections = {key.split(".")[0] for key in flat}
    assert sections == {"seed", "split", "text", "image", "embedding", "fusion", "evaluate", "promotion"}


def test_overrides_take_dotted_keys_like_dvc_exp_run() -> None:
    from core.params import Params, ParamsError, with_overrides

    params = with_overrides(Params(), {"text.C": 1.5, "seed": 7, "promotion.margin": 0.01})
    assert params.text.C == 1.5 and params.seed == 7 and params.promotion.margin == 0.01
    assert Params().text.C == [0.25, 0.5, 1.0]  # the original is unchanged
    for bad, message in (
        ({"text.nope": 1}, "Unknown parameter 'text.nope'"),
        ({"nope.C": 1}, "no section 'nope'"),
        ({"text.C": -1}, "must be a number > 0"),
    ):
        with pytest.raises(ParamsError, match=message):
            with_overrides(Params(), bad)
