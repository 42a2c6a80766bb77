"""Live prediction page pieces: which backend answers (the API when configured and reachable, else
the champion in this process — the page says which), example products, the top-k chart, batch results."""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from typing import Final

import pandas as pd
import plotly.express as px
import streamlit as st

from core.errors import DataFormatError, ImageDecodeError
from core.serving.client import ApiBackend, ApiRejected, ApiUnavailable, Backend, InProcessBackend, Outcome
from core.serving.holder import ModelHolder
from core.serving.predictor import Answer, ImageLimits, NoImageModelError
from core.serving.records import PhotoPolicy
from core.storage.inference_log import InferenceLogWriter
from core.ui import identity
from core.ui.cached import settings

# Lazy imports: the inference log's engine opens on the first in-process prediction.

# What the page says instead of an answer: a bad photo or CSV, no image view, the API refusing or down.
FAILURES: Final = (ImageDecodeError, NoImageModelError, ApiRejected, ApiUnavailable, DataFormatError)
EXAMPLES: Final[dict[str, tuple[str, str]]] = {
    "Swimming pool": (
        "Piscine tubulaire Intex 366 x 122 cm",
        "<p>Piscine hors-sol avec <b>pompe de filtration</b>, bâche et échelle.</p>",
    ),
    "Pop figurine": ("Figurine Funko Pop! Star Wars Dark Vador 10 cm", "Figurine vinyle de collection."),
    "Used book": ("Le Comte de Monte-Cristo - Alexandre Dumas - édition 1950", "Livre ancien, bon état."),
    "Video game": ("FIFA 23 PS4", "Jeu vidéo PlayStation 4, version française, neuf sous blister."),
    "Garden tool": ("Tondeuse à gazon électrique 1600W", "Coupe 38 cm, bac de ramassage 45 L."),
    "Baby socks": ("Lot de 6 paires de chaussettes bébé 0-6 mois", "Coton doux, motifs animaux."),
}


@dataclass(frozen=True)
class Choice:
    backend: Backend | None
    message: str
    fallback: bool = False  # the API is configured but could not be used


@st.cache_resource(show_spinner="Loading the champion model…")
def _holder(tracking_uri: str) -> ModelHolder:
    holder = ModelHolder(settings())
    holder.start()
    return holder


@st.cache_data(ttl=10, show_spinner=False)
def _champion_moved(tracking_uri: str) -> bool:
    return _holder(tracking_uri).champion_moved()


def reload_in_process() -> str:
    """Swap the console's own model to the current champion now; what happened, in words."""
    result = _holder(str(settings().mlflow_tracking_uri)).reload()
    _champion_moved.clear()
    if result.outcome == "failed":
        raise ApiUnavailable(f"Reload failed, still serving v{result.previous}: {result.message}")
    return f"In-process model: {result.message}" + (" (unchanged)" if result.outcome == "unchanged" else "")


@st.cache_resource(show_spinner=False)
def _log_writer(url: str) -> InferenceLogWriter:
    """The console's own inference-log writer (one per console process; flushed at exit)."""

    from core.storage.inference_log import open_engine

    writer = InferenceLogWriter(
        open_engine(url, create=False), inputs_dir=settings().review_inputs_dir
    ).start()
    atexit.register(writer.close, timeout=5.0)
    return writer


def in_process(origin: str = "console") -> InProcessBackend | None:
    """The console's own copy of the champion (reloaded when the alias moved); None before the first."""
    s = settings()
    uri = str(s.mlflow_tracking_uri)
    holder = _holder(uri)
    if _champion_moved(uri):  # a promotion or rollback since the model was loaded
        holder.reload()
        _champion_moved.clear()
    model = holder.current
    if model is None:
        return None
    writer = _log_writer(str(s.inference_log_url))
    return InProcessBackend(model, ImageLimits.of(s), writer=writer, origin=origin, photos=PhotoPolicy.of(s))


def choose_backend() -> Choice:
    s = settings()
    problem = None
    if s.api_url:
        api = ApiBackend(
            s.api_url, max_batch=s.api_max_batch, origin="console", token=identity.api_credential()
        )
        try:
            info = api.model_info()
            return Choice(api, f"Answered by the prediction API at `{s.api_url}` (model v{info['version']}).")
        except (ApiUnavailable, ApiRejected) as exc:
            problem = f"The API at `{s.api_url}` cannot answer ({exc}); predicting in-process instead."
    local = in_process()
    if local is None:
        return Choice(None, problem or "", fallback=problem is not None)
    model = local.model
    where = " — the local copy, the registry is unreachable" if model.source == "local" else ""
    message = problem or (
        f"Predicting in-process with champion v{model.version}{where} (logged for drift monitoring, "
        "origin: console)."
    )
    return Choice(local, message, fallback=problem is not None)


def top_k_chart(outcome: Outcome, key: str) -> None:
    answer = outcome.answers[0]
    frame = pd.DataFrame(
        {
            "category": [f"{r.category} ({r.code})" for r in answer.top_k],
            "probability": [r.probability for r in answer.top_k],
        }
    )
    fig = px.bar(
        frame.iloc[::-1],
        x="probability",
        y="category",
        orientation="h",
        text=frame["probability"].iloc[::-1].map("{:.1%}".format),
        range_x=[0, 1],
        height=60 + 44 * len(frame),
        labels={"category": "", "probability": "probability"},
    )
    # labels beside the bar and level: inside a thin bar plotly would turn them on their side
    fig.update_traces(textposition="outside", textangle=0, cliponaxis=False)
    fig.update_layout(margin=dict(l=0, r=40, t=10, b=0))
    fig.update_xaxes(tickformat=".0%")
    st.plotly_chart(fig, width="stretch", key=key)


def show_outcome(outcome: Outcome, key: str) -> None:
    answer = outcome.answers[0]
    left, middle, right = st.columns([3, 1, 1])
    with left:  # a heading, not a metric: category names are long and must not be cut
        st.caption("Predicted category")
        st.subheader(answer.category, anchor=False)
    middle.metric("Probability", f"{answer.probability:.1%}")
    right.metric("Model", f"v{outcome.model_version}")
    via = "by the API" if outcome.backend == "api" else "in-process"
    st.caption(
        f"Code **{answer.code}** · based on {' + '.join(answer.modalities)} · answered {via} "
        f"in {outcome.seconds * 1000:.0f} ms"
    )
    photo_notice(answer)
    top_k_chart(outcome, key)
    view_answers(answer)


def photo_notice(answer: Answer) -> None:
    """Why a photo did not count (or why its answer is a guess): it is unlike the training photos."""
    photo = answer.photo
    if photo is None or photo.familiar:
        return
    how_far = (
        f"its distance to the nearest training photos is {photo.distance:.2f}, past the "
        f"{photo.threshold:.2f} within which the training photos themselves lie"
    )
    if photo.counted:
        st.warning(
            "This photo is unlike every photo the model was trained on, and there is no title to fall "
            f"back on: treat the answer as a guess ({how_far}). Add the product's title for a reliable "
            "answer.",
            icon=":material/image_not_supported:",
        )
    else:
        st.info(
            "**Answered from the text alone.** The photo is unlike the photos the model was trained on, "
            f"so the photo view abstained rather than guess ({how_far}). What it would have said is shown "
            "below, set aside.",
            icon=":material/image_not_supported:",
        )


VIEW_TITLES: Final = {
    "text": "What the title and description say",
    "text_embedding": "What their meaning says (sentence embedding)",
    "image": "What the photo says",
}


def view_answers(answer: Answer) -> None:
    """Each view's own answer (calibrated probabilities), side by side, when more than one answered:
    the fused answer above weighs them."""
    if len(answer.views) < 2:
        return
    st.caption("Each view on its own — the answer above combines those that counted (stacked fusion)")
    for column, view in zip(st.columns(len(answer.views)), answer.views, strict=True):
        with column, st.container(border=True):
            title = VIEW_TITLES.get(view.view, view.view)
            if view.counted:
                st.markdown(f"**{title}**")
            else:
                st.markdown(f"**{title}** · :orange-badge[set aside: unfamiliar photo]")
            for rank in view.top_k:
                st.progress(rank.probability, text=f"{rank.category} ({rank.code}) — {rank.probability:.0%}")


def batch_frame(outcome: Outcome) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": outcome.ids or list(range(len(outcome.answers))),
            "prdtypecode": [a.code for a in outcome.answers],
            "category": [a.category for a in outcome.answers],
            "probability": [a.probability for a in outcome.answers],
            "runner_up": [a.top_k[1].category if len(a.top_k) > 1 else "" for a in outcome.answers],
        }
    )


BATCH_CONFIG: Final = {
    "probability": st.column_config.ProgressColumn(
        "probability", min_value=0.0, max_value=1.0, format="%.2f"
    ),
    "prdtypecode": st.column_config.NumberColumn("code", format="%d"),
}
