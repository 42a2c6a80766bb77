"""What a step's live progress shows: its newest stages first, without lines swapping at every report,
the newest stage's share as the percentage, and a description the reader splits back into lines.
(Publishing it to Prefect: test_flows.py, against a real Prefect API.)"""

from __future__ import annotations

from core.orchestration.step_progress import LiveProgress, Stages, description_lines

CLUSTER = "Dask tasks (2 workers)"


def test_new_or_restarted_stages_go_on_top_and_alternating_reports_keep_their_places() -> None:
    stages = Stages()
    stages.report("images (train)", 0, 84_916)
    stages.report("images (train)", 100, 84_916)
    stages.report(CLUSTER, 1, 40)  # the cluster's tasks began: on top
    for done in range(2, 13):  # rows and tasks reported in turn: the lines stay where they are
        stages.report("images (train)", 100 * done, 84_916)
        stages.report(CLUSTER, done, 40)
    assert stages.lines() == [f"{CLUSTER}: 12 / 40", "images (train): 1,200 / 84,916"]
    assert stages.percent() == 30.0  # the top line's

    stages.report(CLUSTER, 40, 40)
    stages.report("images (test)", 0, 20_000)
    stages.report("texts", 5, 10)
    assert stages.lines() == [
        "texts: 5 / 10",
        "images (test): 0 / 20,000",
        f"{CLUSTER}: 40 / 40",
    ]  # 3 at most
    stages.report(CLUSTER, 1, 10)  # the next map on the cluster, after the last one finished: on top
    assert stages.lines()[0] == f"{CLUSTER}: 1 / 10"
    stages.report("texts", 1, 10)  # a count that went down: started over
    assert stages.lines()[0] == "texts: 1 / 10" and stages.percent() == 10.0


def test_percent_is_bounded_and_an_empty_stage_is_done() -> None:
    stages = Stages()
    assert stages.percent() == 0.0 and stages.lines() == []
    stages.report("rows", 0, 0)
    assert stages.percent() == 100.0
    stages.report("more rows", 120, 100)  # an estimate outgrown
    assert stages.percent() == 100.0


def test_the_description_reads_back_as_its_lines() -> None:
    stages = Stages()
    stages.report("batch scoring", 1_500, 10_000)
    stages.report(CLUSTER, 3, 20)
    assert description_lines(stages.markdown()) == (f"{CLUSTER}: 3 / 20", "batch scoring: 1,500 / 10,000")
    assert description_lines(None) == () and description_lines("") == ()


def test_outside_a_prefect_run_it_only_keeps_count() -> None:
    live = LiveProgress()
    live("rows", 1, 2)
    live("rows", 2, 2)
    assert live.artifact_id is None and live.stages.lines() == ["rows: 2 / 2"]
