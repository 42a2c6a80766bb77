"""The Evidently report in the console: whatever it holds (it is built partly from served product titles)
is an attribute value of a frame sandboxed to scripts alone — an opaque origin, not the console's — and
never markup of the page around it."""

from __future__ import annotations

from html.parser import HTMLParser

from core.ui.drift_view import _FIT, REPORT_SANDBOX, sandboxed

HOSTILE = (
    '<!DOCTYPE html><html><body><p title="a &amp; b">x</p>'
    "</iframe><script>window.top.__pwned=1</script><img src=x onerror=\"alert('&quot;')\"></body></html>"
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser.tags


def test_the_report_is_an_attribute_of_a_scripts_only_sandbox() -> None:
    page = sandboxed(HOSTILE)
    tags = _tags(page)
    # no img, no script of the report's: the page holds its own few tags and the report as one attribute
    assert [tag for tag, _ in tags] == ["html", "head", "meta", "style", "body", "iframe", "script"]
    assert page.endswith(f"<script>{_FIT}</script></body></html>")  # its own, the same for every report
    assert sandboxed("").endswith(f"<script>{_FIT}</script></body></html>")
    frame = tags[-2][1]
    assert frame["srcdoc"] == HOSTILE  # the whole report, unchanged once the attribute is read
    assert frame["sandbox"] == REPORT_SANDBOX == "allow-scripts"  # no same-origin, popups, navigation, forms


def test_an_empty_report_still_makes_a_well_formed_frame() -> None:
    tags = _tags(sandboxed(""))
    assert tags[-2][1] == {"sandbox": "allow-scripts", "title": "Evidently drift report", "srcdoc": ""}
