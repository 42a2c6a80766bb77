"""Read side of MLflow for the console: training runs, their evaluation artifacts, registered versions
and the promotion history, as plain DataFrames and dataclasses.

Nothing here writes to MLflow or touches Streamlit; `core.tracking.registry` moves aliases. MLflow is
imported lazily, like in `core.tracking.store`.
"""
# Size: the read side of MLflow for the console (runs, artifacts, versions, history) as plain frames.

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from core.categories import label
from core.config import CHALLENGER_ALIAS, CHAMPION_ALIAS, EXPERIMENT_NAME
from core.params import PromotionParams
from core.tracking.gate import Candidate, Decision, decide
from core.tracking.integrity import DIGEST_TAG
from core.tracking.registry import AliasMove, VersionInfo

if TYPE_CHECKING:  # MLflow loads when a client is made
    from mlflow import MlflowClient

# Lazy imports: MLflow's exception type loads with the one call that needs it (clients are passed in).

log = logging.getLogger(__name__)

MAIN_METRICS: Final = (
    "weighted_f1",
    "macro_f1",
    "accuracy",
    "top3_accuracy",
    "top5_accuracy",
    "log_loss",
    "ece",
    "text_weighted_f1",
    "image_weighted_f1_image_rows",
    "fused_weighted_f1_image_rows",
    "tfidf_ece",
    "image_ece",
    "oof_tfidf_weighted_f1",
    "oof_image_weighted_f1",
    "embedding_weighted_f1",
    "embedding_ece",
    "oof_embedding_weighted_f1",
)
LOWER_IS_BETTER: Final = frozenset({"log_loss", "ece", "tfidf_ece", "image_ece", "embedding_ece"})
KEY_PARAMS: Final = ("text.C", "image.C", "image.encoder", "embedding.encoder", "seed")
# What a run really used where the parameter may say `auto`: the resolved name it logged.
_RESOLVED: Final = {"image.encoder": "model.encoder", "embedding.encoder": "model.embedder"}
RUN_COLUMNS: Final = (
    "run_id",
    "run",
    "started",
    "status",
    "fit_s",
    *MAIN_METRICS[:5],
    *KEY_PARAMS,
    "commit",
    "data",
    "rows",
    "version",
    "aliases",
    "gate",
)
_EVALUATION: Final = "evaluation"


@dataclass(frozen=True)
class RunDetail:
    """One run with what the comparison needs: params, metrics, tags and the evaluation tables."""

    run_id: str
    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)  # index code: name, …, f1, support
    confusion: pd.DataFrame = field(default_factory=pd.DataFrame)  # index true code, columns predicted
    calibration: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # fused + each view

    @property
    def label(self) -> str:
        """Unique display name (run names are timestamps to the second, so they can collide)."""
        return f"{self.name} · {self.run_id[:6]}"


def tracking_store_missing(tracking_uri: str) -> bool:
    """True for a local SQLite store whose file does not exist yet: there is nothing to read, and
    opening it would create an empty database as a side effect of looking."""
    prefix = "sqlite:///"
    return tracking_uri.startswith(prefix) and not Path(tracking_uri[len(prefix) :]).is_file()


def runs_table(
    client: MlflowClient,
    experiment_name: str = EXPERIMENT_NAME,
    versions: Sequence[VersionInfo] = (),
    *,
    max_runs: int = 500,
) -> pd.DataFrame:
    """One row per run of the experiment, newest first: identity, timing, main metrics, key params,
    lineage, the registered version made from it (from `versions`) and the gate's verdict."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=max_runs
    )
    by_run = {v.run_id: v for v in versions if v.run_id}
    rows = []
    for run in runs:
        info, data = run.info, run.data
        version = by_run.get(info.run_id)
        rows.append(
            {
                "run_id": info.run_id,
                "run": info.run_name or info.run_id[:8],
                "started": _time(info.start_time),
                "status": info.status,
                # the run itself only spans the logging at the end of evaluate: show the training time
                "fit_s": _fit_seconds(data.metrics),
                **{m: data.metrics.get(m) for m in MAIN_METRICS[:5]},
                **{p: _shown_param(data.params, p) for p in KEY_PARAMS},
                "commit": (data.tags.get("git.commit") or "")[:8],
                "data": data.tags.get("data.fingerprint", ""),
                "rows": _int(data.tags.get("data.rows")),
                "version": version.version if version else None,
                "aliases": ", ".join(version.aliases) if version else "",
                "gate": _verdict(data.tags.get("gate.promote")),
            }
        )
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    frame["version"] = frame["version"].astype("Int64")
    frame["rows"] = frame["rows"].astype("Int64")
    return frame


def run_details(client: MlflowClient, run_ids: Sequence[str]) -> list[RunDetail]:
    """Params, metrics, tags and the `evaluation/` tables of each run, in the order given. A run
    without those artifacts (failed, or logged by an older version) gets empty tables."""
    out = []
    for run_id in run_ids:
        run = client.get_run(run_id)
        per_class, confusion, calibration = _evaluation_tables(client, run_id)
        out.append(
            RunDetail(
                run_id=run_id,
                name=run.info.run_name or run_id[:8],
                params=dict(run.data.params),
                metrics=dict(run.data.metrics),
                tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
                per_class=per_class,
                confusion=confusion,
                calibration=calibration,
            )
        )
    return out


def metric_comparison(details: Sequence[RunDetail], metrics: Sequence[str] = MAIN_METRICS) -> pd.DataFrame:
    """Metrics (rows) × runs (columns); metrics no run has are left out."""
    frame = pd.DataFrame(
        {d.label: [d.metrics.get(m) for m in metrics] for d in details}, index=list(metrics), dtype=float
    )
    return frame.dropna(how="all").rename_axis("metric")


def best_runs(comparison: pd.DataFrame) -> pd.Series:
    """For each metric of `metric_comparison`, the column label of the one best run — none when the
    best value is shared (a tie has no winner) or only one run has the metric."""
    best = {}
    for metric, row in comparison.iterrows():
        values = row.dropna()
        if len(values) < 2:
            continue
        top = values.min() if metric in LOWER_IS_BETTER else values.max()
        winners = values.index[values == top]
        if len(winners) == 1:
            best[metric] = winners[0]
    return pd.Series(best, dtype=object)


def param_differences(details: Sequence[RunDetail]) -> pd.DataFrame:
    """Parameters (rows) × runs (columns), only those whose value is not the same in every run
    (a parameter missing from a run counts as different, shown as `None`)."""
    keys = sorted({k for d in details for k in d.params})
    frame = pd.DataFrame(
        {d.label: [d.params.get(k) for k in keys] for d in details}, index=keys, dtype=object
    )
    differs = frame.apply(lambda row: len({str(v) for v in row}) > 1, axis=1)
    return frame[differs].rename_axis("parameter") if len(frame) else frame


# What a run was trained on, as its tags record it (`core.pipeline.record`): two runs with the same
# parameters can still differ here, and the comparison must not call them the same.
DATA_TAGS: Final = {
    "data.fingerprint": "data version",
    "data.rows": "train rows",
    "data.corrections": "reviewed labels applied",
    "data.corrections_sha256": "corrections file",
}


def data_differences(details: Sequence[RunDetail]) -> pd.DataFrame:
    """What the runs were trained on (rows: `DATA_TAGS`' names) × runs (columns), only the rows whose value
    is not the same in every run. No corrections reads as 0 reviewed labels and no file."""
    keys = list(DATA_TAGS)
    defaults = {"data.corrections": "0", "data.corrections_sha256": ""}
    frame = pd.DataFrame(
        {d.label: [_short(k, d.tags.get(k) or defaults.get(k)) for k in keys] for d in details},
        index=[DATA_TAGS[k] for k in keys],
        dtype=object,
    )
    differs = frame.apply(lambda row: len({str(v) for v in row}) > 1, axis=1)
    return frame[differs].rename_axis("data")


def _short(tag: str, value: str | None) -> str | None:
    """A file digest shortened as the Models page shows it; an empty one as none."""
    if tag == "data.corrections_sha256":
        return value[:12] if value else "none"
    return value


def per_class_f1(details: Sequence[RunDetail]) -> pd.DataFrame:
    """Long table for a grouped bar chart: run, code, category, f1, support."""
    parts = [
        pd.DataFrame(
            {
                "run": d.label,
                "code": d.per_class.index.astype(int),
                "category": [label(c) for c in d.per_class.index],
                "f1": d.per_class["f1"].astype(float).to_numpy(),
                "support": d.per_class["support"].astype(int).to_numpy(),
            }
        )
        for d in details
        if not d.per_class.empty
    ]
    if not parts:
        return pd.DataFrame(columns=["run", "code", "category", "f1", "support"])
    return pd.concat(parts, ignore_index=True)


def confusion_difference(a: pd.DataFrame, b: pd.DataFrame, *, normalize: bool = True) -> pd.DataFrame:
    """`b − a` on the union of codes. With `normalize`, each row is first turned into shares of its true
    class, so two runs evaluated on hold-outs of different sizes compare fairly (the diagonal is then
    the difference in recall)."""
    codes = sorted({*a.index, *a.columns, *b.index, *b.columns})

    def prepare(m: pd.DataFrame) -> pd.DataFrame:
        m = m.reindex(index=codes, columns=codes, fill_value=0).astype(float)
        if normalize:
            m = m.div(m.sum(axis=1).replace(0, 1), axis=0)
        return m

    return (prepare(b) - prepare(a)).rename_axis(index="true", columns="predicted")


def versions_table(versions: Sequence[VersionInfo]) -> pd.DataFrame:
    """Registered versions, newest first, with aliases, score, lineage and the gate's verdict."""
    rows = [
        {
            "version": v.version,
            "aliases": sorted(v.aliases),
            "weighted_f1": _float(v.tags.get("weighted_f1")),
            "created": v.created_at,
            "run_id": v.run_id or "",
            "commit": (v.tags.get("git.commit") or "")[:8],
            "data": v.tags.get("data.fingerprint", ""),
            "corrections": int(v.tags.get("data.corrections") or 0),
            "digests": DIGEST_TAG in v.tags,
            "gate": v.tags.get("gate", ""),
        }
        for v in versions
    ]
    columns = [
        "version",
        "aliases",
        "weighted_f1",
        "created",
        "run_id",
        "commit",
        "data",
        "corrections",
        "digests",
        "gate",
    ]
    return pd.DataFrame(rows, columns=columns)


def history_table(moves: Sequence[AliasMove]) -> pd.DataFrame:
    """Alias moves, oldest first, with `at` parsed to a timestamp (for a timeline)."""
    columns = ["seq", "at", "alias", "kind", "from_version", "to_version", "actor", "reason", "run_id"]
    frame = pd.DataFrame([{c: getattr(m, c) for c in columns} for m in moves], columns=columns)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    for col in ("from_version", "to_version"):
        frame[col] = frame[col].astype("Int64")
    return frame


def manual_gate(
    candidate: VersionInfo, champion: VersionInfo | None, rules: PromotionParams
) -> Decision | None:
    """What the promotion gate says about promoting `candidate` by hand, from the recorded
    `weighted_f1` tags (None when the candidate has none). Only the score checks apply here: the
    per-class and behavioural checks were run, and recorded in the `gate` tag, at training time."""
    f1 = _float(candidate.tags.get("weighted_f1"))
    if f1 is None:
        return None
    champion_f1 = _float(champion.tags.get("weighted_f1")) if champion else None
    return decide(Candidate(f1), champion_f1, rules)


def alias_of(versions: Sequence[VersionInfo], alias: str) -> VersionInfo | None:
    return next((v for v in versions if alias in v.aliases), None)


def champion_of(versions: Sequence[VersionInfo]) -> VersionInfo | None:
    return alias_of(versions, CHAMPION_ALIAS)


def challenger_of(versions: Sequence[VersionInfo]) -> VersionInfo | None:
    return alias_of(versions, CHALLENGER_ALIAS)


def champion_since(moves: Sequence[AliasMove], champion: VersionInfo) -> datetime:
    """When `champion` last took the champion alias (its registration time when no move recorded it)."""
    taken = [m for m in moves if m.alias == CHAMPION_ALIAS and m.to_version == champion.version]
    if not taken:
        return champion.created_at
    at = datetime.fromisoformat(max(taken, key=lambda m: m.seq).at)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def weighted_f1(version: VersionInfo) -> float | None:
    """The weighted F1 recorded on a version at registration (None when it has none)."""
    return _float(version.tags.get("weighted_f1"))


# --- helpers --------------------------------------------------------------------------------------
def _evaluation_tables(
    client: MlflowClient, run_id: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    from mlflow.exceptions import MlflowException

    tables = []
    calibration: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="run-") as tmp:
        for name in ("per_class.csv", "confusion.csv"):
            try:
                path = client.download_artifacts(run_id, f"{_EVALUATION}/{name}", tmp)
                frame = pd.read_csv(path, index_col=0)
            except (MlflowException, OSError) as exc:
                log.info("run %s has no %s/%s: %s", run_id, _EVALUATION, name, exc)
                frame = pd.DataFrame()
            tables.append(frame)
        try:  # runs logged before calibration was reported have none
            path = client.download_artifacts(run_id, f"{_EVALUATION}/calibration.json", tmp)
            calibration = json.loads(Path(path).read_text(encoding="utf-8"))
        except (MlflowException, OSError, ValueError) as exc:
            log.info("run %s has no calibration curves: %s", run_id, exc)
    per_class, confusion = tables
    if not per_class.empty:
        per_class.index = per_class.index.astype(int)
    if not confusion.empty:
        confusion.index = confusion.index.astype(int)
        confusion.columns = confusion.columns.astype(int)
    return per_class, confusion, calibration


def calibration_curves(details: Sequence[RunDetail]) -> pd.DataFrame:
    """Long table of every run's reliability curves: run, view (fused / tfidf / image), confidence,
    accuracy, rows — what the calibration chart draws."""
    frames = [
        pd.DataFrame(
            {
                "run": d.label,
                "view": view,
                "confidence": curve["confidence"],
                "accuracy": curve["accuracy"],
                "rows": curve["rows"],
            }
        )
        for d in details
        for view, curve in d.calibration.items()
    ]
    if not frames:
        return pd.DataFrame(columns=["run", "view", "confidence", "accuracy", "rows"])
    return pd.concat(frames, ignore_index=True)


def _shown_param(params: dict[str, str], name: str) -> str | None:
    """What a run really used: the value a search chose (`chosen.text.C`), the encoder `auto` resolved
    to (`model.encoder`, `model.embedder`), else the parameter as given."""
    for key in (f"chosen.{name}", _RESOLVED.get(name, "")):
        if key in params:
            return params[key]
    return params.get(name)


_TRAINING_TIMES: Final = ("time_text_vectorize_s", "time_search_s", "time_cross_fit_s", "time_stacking_s")


def _fit_seconds(metrics: dict[str, float]) -> float | None:
    """Training time of a run: its stages' seconds (runs from before cross-fitting: the one fit)."""
    if any(k in metrics for k in _TRAINING_TIMES):
        return float(sum(metrics.get(k, 0.0) for k in _TRAINING_TIMES))
    return metrics.get("time_text_fit_s")


def _time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _verdict(flag: str | None) -> str:
    return {"true": "promote", "false": "refuse"}.get(flag or "", "")


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None
