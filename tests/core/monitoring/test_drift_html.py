"""The drift report's HTML: Evidently embeds the report's data — served product titles among it — as JSON
in a <script> block without escaping `<`; what we write holds the very same data with `<`, `>`, `&`
escaped, so a title holding `</script><script>…` stays a string. A layout we do not know is refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from core.errors import DataFormatError
from core.monitoring.drift import IMAGE_COLUMNS, compare
from core.storage.drift_reports import script_safe_html

pytestmark = pytest.mark.slow  # Evidently's import and one small report (~10 s)

PAYLOAD = "</script><script>window.top.__pwned=1;document.title='pwned'</script><!-- & -->"
DATA_LINE = re.compile(r"^[ \t]*var (?:additional_graphs_)?metric_[0-9a-f]+ = (.*);$", re.MULTILINE)


def _frame(titles: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(titles)
    return pd.DataFrame(
        {
            "title": titles,
            "description_length": rng.integers(0, 500, n).astype(float),
            "description_empty": ["filled"] * n,
            "has_image": ["no image"] * n,
            "photo": ["no photo"] * n,
            "predicted_code": rng.choice(["10", "40", "50"], n),
            "confidence": rng.random(n),
            **{column: [np.nan] * n for column in IMAGE_COLUMNS},
        }
    )


@pytest.fixture(scope="module")
def evidently_html() -> str:
    """Evidently's own HTML for a window whose titles all hold the payload (the title column drifts, so
    the report shows characteristic examples: the titles themselves)."""
    words = ["livre", "jeu", "console", "piscine", "jouet", "bebe", "lampe", "figurine"]
    rng = np.random.default_rng(0)
    reference = _frame([" ".join(rng.choice(words, 4)) for _ in range(60)], seed=1)
    current = _frame([f"Lampe {i} {PAYLOAD}" for i in range(60)], seed=2)
    snapshot, *_ = compare(reference, current, drift_share=0.5, max_rows=1000)
    return str(snapshot.get_html_str(as_iframe=False))


def _data(page: str) -> list[object]:
    return [json.loads(line) for line in DATA_LINE.findall(page)]


def test_titles_stay_strings_inside_the_script_block(evidently_html: str) -> None:
    safe = script_safe_html(evidently_html)
    assert PAYLOAD in json.dumps(_data(evidently_html))  # the titles are in the report's data…
    assert _data(safe) == _data(evidently_html)  # …and stay there, the same once parsed
    assert PAYLOAD not in safe
    assert "\\u003c/script\\u003e\\u003cscript\\u003ewindow.top.__pwned=1" in safe
    for line in DATA_LINE.findall(safe):
        assert not set(line) & set("<>&")
    # nothing but the data lines changed, and escaping again changes nothing (reports read back)
    assert DATA_LINE.sub("", safe) == DATA_LINE.sub("", evidently_html)
    assert script_safe_html(safe) == safe


def test_a_layout_without_exactly_one_data_block_is_refused(evidently_html: str) -> None:
    with pytest.raises(DataFormatError, match="0 data blocks"):
        script_safe_html("<html><body>a report from another Evidently</body></html>")
    safe = script_safe_html(evidently_html)  # its data block ends at its own </script>
    block = re.search(r"<script>\n[ \t]*var metric_.*?</script>", safe, re.DOTALL)
    assert block is not None
    with pytest.raises(DataFormatError, match="2 data blocks"):
        script_safe_html(evidently_html + block.group(0))
