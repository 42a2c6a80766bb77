"""The data and training commands of `python -m core`, and its Typer app (the champion: `core.cli.champion`;
the service: `core.cli.service`; flows: `core.cli.flow`; the local stack: `core.cli.stack`).

Ingest, prepare, evaluate and pipeline change what the platform serves (the data, the registry): they act
for the command's principal (`core.cli._shared.acting`); in local development, and so in `dvc repro`, that
is the local user."""
# Size: one small command per data and training step (the DVC stages), each wiring a core call.

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from core.cli._shared import DataDirOpt, WorkersOpt, acting, console, fail, progress
from core.config import get_settings
from core.errors import RakutenError
from core.identity.roles import Action
from core.tracking.registry import open_registry

if TYPE_CHECKING:
    from core.identity.guard import Act
    from core.pipeline.steps import EvaluateOutcome

# Lazy imports: each command imports the steps it runs: `python -m core --help` loads in ~0.7 s, the step
# modules (pandas, scikit-learn, MLflow) would add 3–7 s (python -X importtime, 2 cores).

app = typer.Typer(
    name="core",
    help="Rakuten product classification platform: data, training, serving and monitoring commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command("demo-data")
def demo_data(
    rows: Annotated[int, typer.Option(help="Train rows (the real set has 84,916).", min=27)] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 42,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Write the 500×500 JPEGs.")] = True,
    test_rows: Annotated[
        int | None, typer.Option(help="Test rows \\[default: real test/train ratio].", min=0)
    ] = None,
    label_noise: Annotated[float, typer.Option(help="Share of train labels flipped.", min=0, max=0.5)] = 0.03,
    image_rows: Annotated[
        int | None,
        typer.Option(help="Images for the first N train rows and that share of test (default: all).", min=0),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Target folder \\[default: RAKUTEN_DATA_DIR or data/raw].")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace challenge files already in the directory.")
    ] = False,
    workers: WorkersOpt = None,
) -> None:
    """Generate a demo dataset in the exact layout of the challenge download."""
    from core.data.demo.generator import DemoSpec, write_demo

    settings = get_settings()
    target = out or settings.data_dir
    spec = DemoSpec(
        rows=rows,
        seed=seed,
        test_rows=test_rows,
        images=images,
        label_noise=label_noise,
        image_rows=image_rows,
    )
    try:
        with progress() as update:
            write_demo(
                target, spec, workers=workers or settings.n_workers, overwrite=overwrite, progress=update
            )
    except RakutenError as exc:
        raise fail(exc) from exc
    console.print(f"[green]Wrote[/] {rows:,} train + {spec.n_test:,} test rows to {target}")


@app.command()
def ingest(
    data_dir: DataDirOpt = None,
    out: Annotated[Path | None, typer.Option(help="Output folder \\[default: data/interim].")] = None,
    image_check: Annotated[
        str | None, typer.Option(help="decode | exists | none \\[default: RAKUTEN_IMAGE_CHECK or decode].")
    ] = None,
    workers: WorkersOpt = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any row was quarantined.")] = False,
) -> None:
    """Validate the challenge files and write the merged tables, quarantine and validation report."""
    from core.data.ingest import ingest as run_ingest

    settings = get_settings()
    mode = image_check or settings.image_check
    if mode not in ("decode", "exists", "none"):
        raise fail(ValueError(f"--image-check must be decode, exists or none, not {mode!r}"))
    source = data_dir or settings.data_dir
    try:
        with acting(settings, Action.REINGEST, target=f"data:{source}") as (_, act), progress() as update:
            result = run_ingest(
                source,
                out or settings.interim_dir,
                image_check=mode,  # type: ignore[arg-type]
                workers=workers or settings.n_workers,
                progress=update,
            )
            act.detail = f"validation {result.report.status}"
    except RakutenError as exc:
        raise fail(exc) from exc
    _print_report(result.report, result.outputs)
    if strict and result.report.status == "quarantined":
        raise typer.Exit(code=1)


def _print_report(report: Any, outputs: dict[str, Path]) -> None:
    colour = {"passed": "green", "warnings": "yellow", "quarantined": "yellow"}[report.status]
    console.print(f"Validation: [bold {colour}]{report.status}[/]")
    for split in ("train", "test"):
        st = report.stats.get(split)
        if st:
            console.print(
                f"  {split}: {st['rows_kept']:,} rows kept, {st['rows_quarantined']:,} quarantined, "
                f"{st['images_missing']:,} images missing, {st['images_corrupt']:,} corrupt"
            )
    if report.problems:
        table = Table("severity", "split", "problem", "rows", "examples")
        for p in report.problems:
            table.add_row(p.severity, p.split, p.code, f"{p.count:,}", ", ".join(map(str, p.row_ids[:5])))
        console.print(table)
    for name, path in outputs.items():
        console.print(f"  [dim]{name}:[/] {path}")


@app.command()
def prepare(
    workers: WorkersOpt = None,
    train_if_needed: Annotated[
        bool, typer.Option("--train-if-needed", help="Also run the pipeline when there is no champion yet.")
    ] = False,
    start_first_training: Annotated[
        bool,
        typer.Option(
            "--start-first-training",
            help="No champion yet: start a training on the Prefect worker (what `up` does), waiting "
            "for its deployment.",
        ),
    ] = False,
) -> None:
    """First use: generate demo data if the data folder is empty, then ingest if anything changed."""
    from core.data.prepare import prepare as run_prepare

    settings = get_settings()
    n = workers or settings.n_workers
    target = f"data:{settings.data_dir}"
    try:
        with acting(settings, Action.REINGEST, target=target) as (who, act), progress() as update:
            outcome = run_prepare(settings, workers=n, progress=update)
            act.detail = outcome.summary
        console.print(outcome.summary)
        if train_if_needed and open_registry(settings).champion() is None:
            from core.pipeline import run_pipeline

            console.print("No champion model yet: training the first one…")
            with acting(settings, Action.RETRAIN, target="model", who=who) as (_, act), progress() as update:
                result = run_pipeline(settings, _params(), workers=n, actor=who.name, progress=update)
                _registered(act, result.evaluated)
            _print_outcome(result.evaluated)
        elif start_first_training and open_registry(settings).champion() is None:
            from core.orchestration.launcher import start_when_deployed

            with acting(settings, Action.RETRAIN, target="training", who=who) as (_, act):
                launch = start_when_deployed(settings, actor=who.name, via=who.via)
                act.target = f"run:{launch.run_id}"
            console.print(
                f"No champion model yet: the first training runs on the worker ({launch.name}) — "
                "follow it on the console's Pipeline runs page; predictions start once it is promoted."
            )
    except RakutenError as exc:
        raise fail(exc) from exc


def _params() -> Any:
    from core.params import load_params

    return load_params(get_settings().params_file)


@app.command()
def features(workers: WorkersOpt = None) -> None:
    """Clean the text and encode the images of the ingested data (images cached by content)."""
    from core.pipeline.steps import features_step

    settings = get_settings()
    try:
        with progress() as update:
            result = features_step(
                settings, _params(), workers=workers or settings.n_workers, progress=update
            )
    except RakutenError as exc:
        raise fail(exc) from exc
    console.print(
        f"[green]Features[/] for {len(result.products):,} products ({int(result.has_image.sum()):,} images)"
    )


@app.command()
def train(workers: WorkersOpt = None) -> None:
    """Cross-fit the views and the stacked fusion on every non-hold-out row into models/candidate."""
    from core.pipeline.steps import train_step

    settings = get_settings()
    try:
        with progress() as update:
            result = train_step(settings, _params(), workers=workers or settings.n_workers, progress=update)
    except RakutenError as exc:
        raise fail(exc) from exc
    s = result.summary
    oof = s["out_of_fold"]
    views = ", ".join(
        f"{view} {oof[f'{view}_weighted_f1']:.4f}"
        for view in ("tfidf", "image")
        if f"{view}_weighted_f1" in oof
    )
    console.print(
        f"[green]Trained[/] on {s['rows']['train']:,} rows ({s['rows']['holdout']:,} held out), "
        f"{s['folds']}-fold cross-fitted: out-of-fold weighted F1 {views}; "
        f"fusion over {', '.join(s['fusion']) or 'one view'}"
    )


@app.command()
def evaluate() -> None:
    """Score the candidate on the hold-out, log it to MLflow, register it, run the promotion gate (the
    registry's history names who ran it)."""
    from core.pipeline.steps import evaluate_step

    settings = get_settings()
    try:
        params = _params()
        with acting(settings, Action.RETRAIN, target="model") as (who, act), progress() as update:
            outcome = evaluate_step(settings, params, actor=who.name, progress=update)
            _registered(act, outcome)
    except RakutenError as exc:
        raise fail(exc) from exc
    _print_outcome(outcome)


def _registered(act: Act, outcome: EvaluateOutcome) -> None:
    """The audit record of a registration: the version, and what the gate made of it."""
    act.target = f"model:v{outcome.version}"
    act.detail = f"{outcome.registry_move} ({outcome.decision.summary})"


def _print_outcome(outcome: Any) -> None:
    m = outcome.evaluation.metrics
    console.print(
        f"Weighted F1 [bold]{m['weighted_f1']:.4f}[/] · macro F1 {m['macro_f1']:.4f} · "
        f"accuracy {m['accuracy']:.4f} · behavioural checks {outcome.behaviour.pass_rate:.0%}"
    )
    verdict = "[green]champion[/]" if outcome.decision.promote else "[yellow]challenger[/]"
    console.print(f"Registered version {outcome.version} → {verdict}")
    for reason in outcome.decision.reasons:
        console.print(f"  · {reason}")


@app.command()
def predict(
    workers: WorkersOpt = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="A catalogue to score instead of X_test: a CSV or Parquet file, or a folder of them "
            "(streamed, any size; on the Dask cluster when RAKUTEN_DASK_ADDRESS is set).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where the answers go (.parquet or .csv), with --input."),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            help="The photos' folder, for inputs with productid and imageid "
            "(image_<imageid>_product_<productid>.jpg)."
        ),
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="A registered version instead of the champion.", min=1)
    ] = None,
) -> None:
    """Predict X_test with the champion: predictions.csv (submission format) and probabilities; or, with
    --input and --output, score a catalogue of any size."""
    if source is not None or output is not None:
        _score_catalogue(source, output, images, version)
        return
    from core.pipeline.steps import predict_step

    settings = get_settings()
    try:
        with progress() as update:
            out = predict_step(settings, workers=workers or settings.n_workers, progress=update)
    except RakutenError as exc:
        raise fail(exc) from exc
    console.print(
        f"[green]Predicted[/] {out.rows:,} products with champion v{out.version}: {out.predictions}"
    )


def _score_catalogue(
    source: Path | None, output: Path | None, images: Path | None, version: int | None
) -> None:
    from core.pipeline.catalogue import NO_INPUT, report_path, score_catalogue

    if source is None or output is None:
        console.print(
            "[bold red]Error:[/] --input and --output go together (what to score, and where to write)."
        )
        raise typer.Exit(code=2)
    settings = get_settings()
    try:
        with progress() as update:
            report = score_catalogue(
                settings, source, output, images_dir=images, version=version, progress=update
            )
    except RakutenError as exc:
        raise fail(exc) from exc
    where = report.cluster or "this process"
    console.print(
        f"[green]Scored[/] {report.rows_written:,} products with v{report.version} in {report.seconds:.1f} s "
        f"({report.rows_per_s:,.0f}/s, {where}): {output}"
    )
    for problem, n in sorted(report.problems.items()):
        colour = "yellow" if problem != NO_INPUT else "red"
        console.print(f"  [{colour}]{n:,}[/] {problem}")
    if report.unreadable_lines:
        console.print(
            f"  [red]{report.unreadable_lines:,}[/] CSV lines could not be read (wrong number of fields): "
            f"not scored, quoted in {report_path(output)}"
        )
    console.print(f"  report: {report_path(output)}")


@app.command()
def pipeline(workers: WorkersOpt = None) -> None:
    """Run ingest → features → train → evaluate → predict in one process (what `dvc repro` runs)."""
    from core.pipeline import run_pipeline

    settings = get_settings()
    n = workers or settings.n_workers
    try:
        params = _params()
        with acting(settings, Action.RETRAIN, target="model") as (who, act), progress() as update:
            result = run_pipeline(settings, params, workers=n, actor=who.name, progress=update)
            _registered(act, result.evaluated)
    except RakutenError as exc:
        raise fail(exc) from exc
    _print_outcome(result.evaluated)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    console.print(f"Predictions: {result.predicted.predictions}  [dim]({timing})[/]")
