"""Review page pieces: the two queues, the item card (photo, text, label, top 5, why), the decisions
(accept, another class, not a product / unclear, skip, undo) made as the signed-in reviewer, the
corrections' history, the export and the label-issue scan.

Queues are read once (cached ~2 min) and the items decided in this session are filtered out in memory,
so the next item shows without re-reading the inference log. The model's view of an item (its top 5,
each view's answer, the n-grams behind the text answer) is computed by the champion in this process and
cached per item.
"""
# Size: one page's view-model: the queues, the card, the decisions and the audit belong together.

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd
import streamlit as st

from core.categories import CODES, label, names
from core.errors import RakutenError
from core.features.text import clean_text
from core.identity.roles import Action, Forbidden
from core.review import inbox
from core.review.explain import explain_text
from core.serving.predictor import ImageLimits, Product, predict
from core.storage.corrections import CorrectionError, CorrectionsStore
from core.ui import identity
from core.ui.cached import settings
from core.ui.components import plural
from core.ui.prediction_view import in_process

# Lazy imports: the label-issue scan (cleanlab, ~2 s) loads when a scan runs or its result is read.

KINDS: Final = {"production": "Production", "training": "Training data"}
QUEUE_NAMES: Final = {
    "label_issue": "suspicious label",
    "duplicate": "identical product, other label",
    "unfamiliar_photo": "photo unlike the training photos",
    "low_confidence": "low confidence",
    "views_disagree": "text and photo disagree",
    "drift": "drifted window",
}
_FLASH: Final = "review_flash"  # a decision's outcome, above the card
EXPORT_FLASH: Final = "review_export_flash"  # shown beside the export button
SCAN_FLASH: Final = "review_scan_flash"  # shown beside the scan button
_DONE: Final = "review_done"  # keys decided in this session: out of the cached queue
_SKIPPED: Final = "review_skipped"
_UNDO: Final = "review_undo"  # (correction id, key) of this session's decisions, newest last


# --- the store and the queues -----------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _store(url: str) -> CorrectionsStore:
    return CorrectionsStore.open(url)


def store() -> CorrectionsStore:
    return _store(str(settings().inference_log_url))


@st.cache_data(ttl=120, show_spinner="Reading the queue…", max_entries=4)
def _queue(kind: str, stamp: int) -> pd.DataFrame:
    s = settings()
    if kind == "production":
        return inbox.production_items(s, store())
    return inbox.training_items(s, store())


def refresh() -> None:
    """Read the queues again (new predictions, a new scan, other reviewers' decisions)."""
    st.session_state["review_stamp"] = st.session_state.get("review_stamp", 0) + 1
    st.session_state[_SKIPPED] = set()


def queue(kind: str) -> pd.DataFrame:
    """The queue without what this session decided or skipped."""
    frame = _queue(kind, st.session_state.get("review_stamp", 0))
    gone = st.session_state.setdefault(_DONE, set()) | st.session_state.setdefault(_SKIPPED, set())
    return frame[~frame["key"].isin(gone)] if gone else frame


def session_count() -> int:
    return len(st.session_state.get(_UNDO, []))


# --- the reviewer ------------------------------------------------------------------------
def reviewer() -> str:
    """Who is reviewing (recorded with every correction): the signed-in user."""
    return identity.actor()


def may_review() -> bool:
    return identity.allowed(Action.REVIEW)


# --- the model's view of an item ---------------------------------------------------------------------
@dataclass(frozen=True)
class ModelView:
    version: int
    top: list[tuple[int, float]]
    views: dict[str, list[tuple[int, float]]]
    why_answer: list[tuple[str, str, float]]
    why_label: list[tuple[str, str, float]]


@st.cache_data(show_spinner=False, max_entries=256)
def _model_view(
    key: str, version: int, title: str, description: str, image: str, current: int | None
) -> ModelView | None:
    backend = in_process()
    if backend is None:
        return None
    served = backend.model
    photo = Path(image).read_bytes() if image and Path(image).is_file() else None
    try:
        (answer,) = predict(
            served.classifier, [Product(title or None, description, photo)], ImageLimits.of(settings())
        )
    except RakutenError:  # a photo that no longer decodes: judge the text alone
        (answer,) = predict(
            served.classifier, [Product(title or None, description)], ImageLimits.of(settings())
        )
    text = served.classifier.text
    why = (
        [(c.kind, c.ngram, c.weight) for c in explain_text(text, title, description, answer.code)]
        if title
        else []
    )
    other = (
        [(c.kind, c.ngram, c.weight) for c in explain_text(text, title, description, current)]
        if title and current is not None and current != answer.code
        else []
    )
    return ModelView(
        served.version,
        [(r.code, r.probability) for r in answer.top_k],
        {v.view: [(r.code, r.probability) for r in v.top_k] for v in answer.views},
        why,
        other,
    )


def model_view(item: dict[str, Any]) -> ModelView | None:
    backend = in_process()
    version = backend.model.version if backend is not None else 0
    current = None if pd.isna(item["current"]) else int(item["current"])
    return _model_view(
        str(item["key"]),
        version,
        str(item["designation"]),
        str(item["description"]),
        str(item["image_path"]),
        current,
    )


# --- the card -----------------------------------------------------------------------------------------
def item_card(item: dict[str, Any], view: ModelView | None) -> None:
    photo, text = st.columns([2, 5])
    with photo:
        path = str(item["image_path"] or "")
        if path and Path(path).is_file():
            st.image(path, width="stretch")
        else:
            st.caption(":material/hide_image: no photo")
    with text:
        queue = QUEUE_NAMES.get(str(item["queue"]), item["queue"])
        st.caption(f"{KINDS[str(item['source'])]} · {queue} · `{item['key']}`")
        st.markdown(f"### {item['designation'] or '(no title)'}")
        description = clean_text(item["description"])
        st.write(
            description[:1200] + ("…" if len(description) > 1200 else "")
            if description
            else "*No description.*"
        )
        current = None if pd.isna(item["current"]) else int(item["current"])
        st.markdown(f"**{_said(item)}: {label(current) if current is not None else '—'}**")
        st.caption(f"Why it is here: {item['detail']}")
    if view is None:
        st.caption("No champion to explain the item (train and promote a model first).")
        return
    left, right = st.columns(2)
    with left:
        st.markdown(f"**Top 5 of champion v{view.version}**")
        for code, p in view.top:
            st.progress(min(max(p, 0.0), 1.0), text=f"{label(code)} — {p:.0%}")
        if len(view.views) > 1:
            st.caption(
                f"Each view of champion v{view.version}: "
                + " · ".join(
                    f"{_VIEWS.get(name, name)}: {label(ranked[0][0])} ({ranked[0][1]:.0%})"
                    for name, ranked in view.views.items()
                )
            )
        if item["source"] == "training":
            st.caption(
                f"Champion v{view.version} was trained on this row; the scan's numbers above come from the "
                "cross-validated model that never saw it."
            )
    with right:
        answer_title, label_title = why_titles(item, view)
        _why(view.why_answer, answer_title)
        if view.why_label:
            _why(view.why_label, label_title)


_VIEWS: Final = {"text": "text", "text_embedding": "meaning", "image": "photo"}


def _said(item: dict[str, Any]) -> str:
    """Whose the item's class is: the training label, or the answer a given version served."""
    if item["source"] == "training":
        return "Labelled"
    version = item.get("model_version")
    return "Served answer" if version is None or pd.isna(version) else f"Served by v{int(version)}"


def why_titles(item: dict[str, Any], view: ModelView) -> tuple[str, str]:
    """The headings of the two n-gram tables: both explain the champion's text view (the only view with
    exact contributions), the first towards the champion's own answer — which the text view alone may
    not give — the second towards the item's label (training) or its served answer (production)."""
    answer = view.top[0][0]
    text = view.views.get("text")
    said_by_text = text[0][0] if text else answer
    whose = f"champion v{view.version}'s text view"
    first = (
        f"What pushed {whose} to {answer} (the champion's answer too)"
        if said_by_text == answer
        else f"What pushed {whose} towards {answer}, the champion's answer (the text view alone answered "
        f"{said_by_text})"
    )
    current = None if pd.isna(item["current"]) else int(item["current"])
    if item["source"] == "training":
        second = f"What pushed {whose} towards the label {current}"
    else:
        version = item.get("model_version")
        served = (
            "the served answer" if version is None or pd.isna(version) else f"v{int(version)}'s served answer"
        )
        second = f"What pushed {whose} towards {current}, {served}"
    return first, second


def _why(rows: list[tuple[str, str, float]], title: str) -> None:
    st.markdown(f"**{title}**")
    if not rows:
        st.caption("No n-gram of this text favours it.")
        return
    frame = pd.DataFrame(rows, columns=["kind", "n-gram", "weight"])
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "weight": st.column_config.ProgressColumn(
                "weight", min_value=0.0, max_value=float(frame["weight"].max()), format="%.3f"
            )
        },
    )


# --- decisions ------------------------------------------------------------------------------------------
def _record(item: dict[str, Any], code: int | None) -> None:
    note = str(st.session_state.get("review_note", "")).strip() or None
    what = "set aside as unclear" if code is None else f"labelled {label(code)}"
    try:
        with identity.acting(Action.REVIEW, target=f"product:{item['key']}", reason=note or "") as act:
            correction_id = store().add(inbox.decide(item, code, reviewer(), note))
            act.detail = f"correction #{correction_id}: {what}"
    except Forbidden as exc:
        st.session_state[_FLASH] = ("error", str(exc))
        return
    except CorrectionError as exc:
        st.session_state[_FLASH] = ("error", str(exc))
        st.session_state.setdefault(_SKIPPED, set()).add(item["key"])  # decided elsewhere: move on
        return
    st.session_state.setdefault(_DONE, set()).add(item["key"])
    st.session_state.setdefault(_UNDO, []).append((correction_id, item["key"]))
    st.session_state["review_note"] = ""
    st.session_state[_FLASH] = ("success", f"`{item['key']}` {what} (correction #{correction_id}).")


def _relabel(item: dict[str, Any]) -> None:
    code = st.session_state.get("review_class")
    if code is None:
        st.session_state[_FLASH] = ("error", "Pick the right class first.")
        return
    _record(item, int(code))


def _skip(item: dict[str, Any]) -> None:
    st.session_state.setdefault(_SKIPPED, set()).add(item["key"])


def _undo() -> None:
    stack = st.session_state.get(_UNDO, [])
    if not stack:
        return
    correction_id, key = stack[-1]
    try:
        with identity.acting(Action.REVIEW, target=f"product:{key}", reason="undo") as act:
            store().undo(correction_id, by=reviewer())
            act.detail = f"correction #{correction_id} undone"
    except (Forbidden, CorrectionError) as exc:
        st.session_state[_FLASH] = ("error", str(exc))
        return
    stack.pop()
    st.session_state.get(_DONE, set()).discard(key)
    st.session_state.get(_SKIPPED, set()).discard(key)
    st.session_state[_FLASH] = (
        "info",
        f"Correction #{correction_id} of `{key}` undone: the item is back in its queue.",
    )


def decision_bar(item: dict[str, Any]) -> None:
    """Pick a class (preset to the model's suggestion) and set it; or accept, set aside, skip, undo —
    each with a one-key shortcut."""
    disabled = not may_review()
    current = None if pd.isna(item["current"]) else int(item["current"])
    codes = sorted(CODES, key=lambda c: names()[c])
    suggested = item.get("suggested")
    preset = (
        int(suggested)
        if suggested is not None and not pd.isna(suggested) and int(suggested) != current
        else None
    )
    if st.session_state.get("review_class_for") != item["key"]:  # a new item: its own preset
        st.session_state["review_class_for"] = item["key"]
        st.session_state["review_class"] = preset
    pick, apply = st.columns([3, 1], vertical_alignment="bottom")
    pick.selectbox(
        "Right class",
        codes,
        format_func=label,
        key="review_class",
        placeholder="Search a class by name or code…",
        disabled=disabled,
    )
    apply.button(
        "Set this class",
        key="review_relabel",
        disabled=disabled,
        on_click=_relabel,
        args=(item,),
        shortcut="l",
        width="stretch",
        help=identity.why(Action.REVIEW, "Record the class picked on the left (shortcut L)."),
    )
    accept, unclear, skip, undo = st.columns([2, 2, 1, 1])
    accept.button(
        "Accept label" if item["source"] == "training" else "Accept answer",
        key="review_accept",
        type="primary",
        disabled=disabled or current is None,
        on_click=_record,
        args=(item, current),
        shortcut="a",
        width="stretch",
        help=identity.why(Action.REVIEW, "The current label (or served answer) is right (shortcut A)."),
    )
    unclear.button(
        "Not a product / unclear",
        key="review_unclear",
        disabled=disabled,
        on_click=_record,
        args=(item, None),
        shortcut="u",
        width="stretch",
        help=identity.why(Action.REVIEW, "Set the product aside: it leaves the training data (shortcut U)."),
    )
    skip.button("Skip", key="review_skip", on_click=_skip, args=(item,), shortcut="s", width="stretch")
    undo.button(
        "Undo",
        key="review_undo_button",
        on_click=_undo,
        disabled=disabled or not st.session_state.get(_UNDO),
        shortcut="z",
        width="stretch",
        help=identity.why(Action.REVIEW, "Withdraw your last decision (shortcut Z): the item comes back."),
    )
    st.text_input("Note (optional)", key="review_note", placeholder="Why — kept with the correction")


def show_flash(where: str = _FLASH) -> None:
    """A pending outcome, once: a decision's above the card (the default), the export's or the scan's
    beside their button (`EXPORT_FLASH`, `SCAN_FLASH`)."""
    found = st.session_state.pop(where, None)
    if found:
        kind, message = found
        {"success": st.success, "error": st.error, "info": st.info}[kind](message)


# --- audit, export, scan ---------------------------------------------------------------------------------
def audit_table() -> pd.DataFrame:
    frame = store().table(include_undone=True)
    if frame.empty:
        return frame
    frame = frame.sort_values("id", ascending=False)
    frame["state"] = frame["active"].map(lambda a: "active" if a is True else "undone")
    return frame.loc[
        :,
        [
            "id",
            "created_at",
            "reviewer",
            "product_key",
            "source",
            "queue",
            "verdict",
            "old_code",
            "new_code",
            "note",
            "state",
            "undone_by",
            "undone_at",
        ],
    ]


def export_now() -> None:
    try:
        with identity.acting(Action.EXPORT_CORRECTIONS, target="corrections:labels.csv") as act:
            done = inbox.export(settings(), store())
            act.detail = f"{plural(done.rows, 'correction')}, {plural(done.photos, 'photo')}"
    except Forbidden as exc:
        st.session_state[EXPORT_FLASH] = ("error", str(exc))
        return
    except (RakutenError, OSError) as exc:
        st.session_state[EXPORT_FLASH] = ("error", f"Export failed, the previous file stands: {exc}")
        return
    missing = f", {done.photos_missing:,} without their photo" if done.photos_missing else ""
    them = "it" if done.rows == 1 else "them"
    st.session_state[EXPORT_FLASH] = (
        "success",
        f"{plural(done.rows, 'correction')} exported to `{done.path}` ({plural(done.photos, 'photo')}"
        f"{missing}): the next ingest (Retrain) trains with {them}.",
    )


def corrections_file() -> bytes | None:
    path = settings().corrections_file
    return path.read_bytes() if path.is_file() else None


def scan_now() -> None:
    from core.review.label_issues import scan

    bar = st.progress(0.0, text="Scanning…")

    def show(stage: str, done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=stage)

    try:
        with identity.acting(Action.SCAN_LABELS, target="training:labels") as act:
            # one process: cleanlab's workers are forked, and a fork of the console's many-threaded server
            # can hang on a lock another thread held (the CLI, single-threaded, scans with every core)
            result = scan(settings(), workers=1, progress=show)
            act.detail = plural(result.meta["label_issues"], "suspicious label")
    except RakutenError as exc:
        bar.empty()
        st.session_state[SCAN_FLASH] = ("error", str(exc))
        return
    bar.empty()
    refresh()
    st.session_state[SCAN_FLASH] = (
        "success",
        f"Scan done in {result.meta['seconds']} s: {scan_summary(result.meta)}.",
    )


def scan_summary(meta: dict[str, Any]) -> str:
    """What a scan found, counted: suspicious labels among the rows, rows of clashing duplicates."""
    issues = plural(int(meta.get("label_issues", 0)), "suspicious label")
    rows = plural(int(meta.get("rows_scanned", 0)), "row")
    duplicates = plural(int(meta.get("duplicate_rows", 0)), "row")
    return f"{issues} among {rows}, {duplicates} of identical products labelled differently"


def scan_meta() -> dict[str, Any] | None:
    from core.review.label_issues import load_scan

    found = load_scan(settings().label_issues_file)
    return found.meta if found else None
