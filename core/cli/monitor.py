"""`python -m core drift` and `python -m core simulate`: a drift report now (for the command's principal,
`core.cli._shared.acting`); traffic (optionally shifted) replayed against the prediction service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from core.cli._shared import acting, console, fail, progress, stack_settings
from core.config import get_settings
from core.errors import RakutenError
from core.identity.roles import Action

# Lazy imports: each command imports what it runs: the drift report's modules (~1–3 s) are not loaded for
# `--help`.

HOURS_HELP = "Window: the last N hours \\[default: RAKUTEN_MONITOR_WINDOW_HOURS]"
URL_HELP = "API URL \\[default: RAKUTEN_API_URL or the local API]"
LABELS_HELP = (
    "CSV request_id,prdtypecode (true classes, e.g. from `simulate --labelled`): adds classification quality"
)
LABELLED_HELP = (
    "Replay held-out labelled training products and write their true classes (for `drift --labels`)"
)


def _share(text: str) -> typer.models.OptionInfo:
    return typer.Option(help=text, min=0.0, max=1.0)


def drift(
    hours: Annotated[int | None, typer.Option(help=HOURS_HELP, min=1)] = None,
    rows: Annotated[int | None, typer.Option(help="At most the latest N predictions", min=1)] = None,
    labels: Annotated[Path | None, typer.Option(help=LABELS_HELP, exists=True, dir_okay=False)] = None,
) -> None:
    """Compare recent predictions (inference log) with the training reference: Evidently report."""
    from core.monitoring.drift import report_now
    from core.storage.drift_reports import read_labels

    settings = get_settings()
    changes = {k: v for k, v in {"monitor_window_hours": hours, "monitor_window_rows": rows}.items() if v}
    settings = settings.model_copy(update=changes)
    try:
        truth = read_labels(labels) if labels else None
        with acting(settings, Action.DRIFT_REPORT, target="drift:report") as (_, act), progress() as update:
            summary = report_now(settings, labels=truth, progress=update)
            act.target = f"drift:{summary.html}"
            act.detail = summary.reasons[0]
    except RakutenError as exc:
        raise fail(exc) from exc
    colour = "red" if summary.drift_detected else "green"
    console.print(f"[bold {colour}]{summary.reasons[0]}[/]")
    for reason in summary.reasons[1:]:
        console.print(f"  {reason}")
    table = Table("column", "kind", "method", "score", "threshold", "drifted")
    for c in summary.columns:
        flag = "yes" if c.drifted else ""
        table.add_row(c.column, c.kind, c.method, f"{c.score:.4f}", f"{c.threshold:g}", flag)
    console.print(table)
    for note in summary.skipped:
        console.print(f"  not compared: {note}")
    folder = settings.drift_dir
    console.print(
        f"{summary.current_rows:,} predictions vs {summary.reference_rows:,} reference products "
        f"in {summary.seconds:.1f} s → {folder / summary.html}"
    )


def simulate(
    n: Annotated[int, typer.Option("--n", help="How many products to send", min=1)] = 1000,
    url: Annotated[str | None, typer.Option(help=URL_HELP)] = None,
    clients: Annotated[int, typer.Option(help="Concurrent clients", min=1, max=64)] = 4,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Send the product photos")] = True,
    class_mix: Annotated[float, _share("Share drawn from a few classes only")] = 0.0,
    new_vocabulary: Annotated[float, _share("Share of titles of unseen product types")] = 0.0,
    darker: Annotated[float, _share("Share of images darkened")] = 0.0,
    empty_description: Annotated[float, _share("Share of descriptions removed")] = 0.0,
    unfamiliar_photos: Annotated[
        float, _share("Share of photos swapped for natural scenes, unlike every product photo")
    ] = 0.0,
    drifted: Annotated[bool, typer.Option("--drifted", help="A strong shift of every kind at once")] = False,
    seed: Annotated[int, typer.Option(help="Same seed, same products and shifts")] = 0,
    labelled: Annotated[bool, typer.Option("--labelled", help=LABELLED_HELP)] = False,
    labels_out: Annotated[Path | None, typer.Option(help="Where --labelled writes the labels CSV")] = None,
) -> None:
    """Replay held-back products (the test set) against the prediction service, optionally shifted."""
    from core.io import write_text
    from core.monitoring.simulate import Shift, describe_shift, send_held_back
    from core.serving.client import ApiBackend

    settings = stack_settings()  # the API of the stack running on this project, whatever its port
    if drifted:
        class_mix, new_vocabulary, darker, empty_description = 0.5, 0.5, 0.8, 0.7
    shift = Shift(
        class_mix=class_mix,
        new_vocabulary=new_vocabulary,
        darker=darker,
        empty_description=empty_description,
        unfamiliar_photos=unfamiliar_photos,
    )
    target = url or settings.api_url or f"http://{settings.api_host}:{settings.api_port}"
    token = settings.token.get_secret_value() if settings.token else None  # where /predict* needs one
    backend = ApiBackend(target, timeout=30.0, origin="simulator", token=token)
    try:
        backend.model_info(timeout=5.0)  # fail fast, with the reason, when the API is not there
        console.print(f"Sending {n:,} products to {target} ({describe_shift(shift)}), {clients} clients")
        with progress() as update:
            sent, result = send_held_back(
                settings,
                backend,
                n,
                shift,
                seed=seed,
                labelled=labelled,
                clients=clients,
                images=images,
                progress=update,
            )
    except RakutenError as exc:
        raise fail(exc) from exc
    console.print(
        f"{result.answered:,} answered, {result.failed:,} failed in {result.seconds:.1f} s "
        f"({result.rate:,.0f} req/s); model versions: {dict(result.versions)}"
    )
    for reason, count in result.errors.most_common():
        console.print(f"  {count:,} × {reason}")
    if labelled:
        first = sent["request_id"].iloc[0]
        labels_file = labels_out or settings.drift_labels_dir / f"{first}.csv"
        truth = sent[["request_id", "label"]].rename(columns={"label": "prdtypecode"})
        write_text(labels_file, truth.to_csv(index=False))
        console.print(
            f"True classes of the {len(truth):,} requests: {labels_file}\n"
            f"  python -m core drift --rows {len(truth)} --labels {labels_file}"
        )
    if result.failed:
        raise typer.Exit(code=1)
