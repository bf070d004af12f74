from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from services.core.errors import FlightdeckError
from services.core.links import RunsView
from services.core.records import Run
from services.experiments.runs import (
    build_search,
    column_catalog,
    default_columns,
    group_summary,
    merge_runs,
    parse_run_ids,
    runs_frame,
    sort_frame,
    split_or,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def run(run_id: str, minutes: int = 0, **metrics: float) -> Run:
    return Run(
        run_id.ljust(32, "0"),
        "1",
        f"run-{run_id}",
        "FINISHED",
        T0 + timedelta(minutes=minutes),
        None,
        "u",
        False,
        metrics,
        {"family": "rf" if minutes % 2 else "gbm"},
        {"team": "x"},
    )


def test_or_splits_on_top_level_only_and_respects_quotes() -> None:
    assert split_or("metrics.a > 1 and params.m = 'rf' OR params.m = 'this or that'") == [
        "metrics.a > 1 and params.m = 'rf'",
        "params.m = 'this or that'",
    ]
    assert split_or("") == [""]
    assert split_or("tags.`x or y` = '1'") == ["tags.`x or y` = '1'"]


def test_dangling_or_is_a_clear_error() -> None:
    with pytest.raises(FlightdeckError, match="condition on each side"):
        split_or("metrics.a > 1 or ")


def test_quick_filters_are_anded_into_every_or_branch() -> None:
    view = RunsView(
        experiment_ids=("1",),
        filter="metrics.a > 1 or metrics.b < 2",
        statuses=("FINISHED", "FAILED"),
        started_from=date(2026, 11, 1),
        started_to=date(2026, 11, 2),
        tag="team=health",
        parents_only=True,
    )
    search = build_search(view)
    assert len(search.filters) == 4  # 2 OR branches x 2 statuses: MLflow has no status IN
    assert sum("attributes.status = 'FAILED'" in branch for branch in search.filters) == 2
    for branch in search.filters:
        assert f"attributes.start_time >= {int(T0.timestamp() * 1000)}" in branch
        assert (
            f"attributes.start_time < {int((T0 + timedelta(days=2)).timestamp() * 1000)}" in branch
        )
        assert "tags.`team` = 'health'" in branch
        assert "tags.`mlflow.parentRunId` IS NULL" in branch
    assert search.filters[0].startswith("metrics.a > 1 and ")


def test_sort_by_a_metric_is_pushed_to_mlflow() -> None:
    search = build_search(RunsView(experiment_ids=("1",), sort="metrics.acc", ascending=True))
    assert search.order_by[0] == "metrics.`acc` ASC"


def test_merge_drops_duplicates_and_keeps_the_requested_order() -> None:
    a, b, c = run("a", 1, acc=0.5), run("b", 2, acc=0.9), run("c", 3, acc=0.7)
    merged = merge_runs([[b, a], [c, b]], ["metrics.`acc` DESC"])
    assert [r.run_id[0] for r in merged] == ["b", "c", "a"]


def test_merge_puts_runs_without_the_metric_last() -> None:
    merged = merge_runs([[run("a", 1)], [run("b", 2, acc=0.1)]], ["metrics.`acc` DESC"])
    assert [r.run_id[0] for r in merged] == ["b", "a"]


def test_table_builds_only_the_columns_asked_for() -> None:
    runs = [run("a", 1, acc=0.5, loss=0.1)]
    frame = runs_frame(runs, ["metrics.acc"], {"1": "exp"})
    assert "metrics.acc" in frame.columns and "metrics.loss" not in frame.columns
    assert frame.index[0] == runs[0].run_id
    assert frame.loc[runs[0].run_id, "Experiment"] == "exp"


def test_catalog_and_defaults_with_many_keys_stay_small() -> None:
    many = Run(
        "f" * 32,
        "1",
        "wide",
        "FINISHED",
        T0,
        None,
        "u",
        False,
        {f"m{i}": 1.0 for i in range(10_000)},
        {f"p{i}": "1" for i in range(500)},
        {},
    )
    catalog = column_catalog([many])
    assert len(catalog.metrics) == 10_000 and len(catalog.params) == 500
    assert len(default_columns(catalog)) <= 10


def test_sort_frame_sorts_numbers_numerically_with_missing_last() -> None:
    frame = pd.DataFrame({"params.depth": ["10", "9", None]}, index=["a", "b", "c"])
    assert sort_frame(frame, "params.depth", ascending=True).index.tolist() == ["b", "a", "c"]


def test_group_summary_ignores_nan_and_inf() -> None:
    runs = [
        run("a", 1, acc=0.5),
        run("b", 3, acc=math.inf),
        run("c", 2, acc=0.9),
        run("d", 4, acc=math.nan),
    ]
    summary = group_summary(runs, "params.family", ["metrics.acc"]).set_index("params.family")
    assert summary.loc["rf", "Runs"] == 2
    assert summary.loc["rf", "metrics.acc (max)"] == 0.5
    assert summary.loc["gbm", "metrics.acc (mean)"] == 0.9


def test_pasted_run_ids_are_found_in_any_text() -> None:
    a, b = "a" * 32, "0123456789abcdef" * 2
    assert parse_run_ids(f"{a}, {b}\n{a.upper()} junk") == [a, b]


def test_runs_view_round_trips_through_the_url() -> None:
    view = RunsView(
        experiment_ids=("1", "2"),
        filter="metrics.a > 1",
        statuses=("FAILED",),
        started_from=date(2026, 1, 2),
        parents_only=True,
        sort="metrics.a",
        columns=("metrics.a",),
        selected=("f" * 32,),
    )
    assert RunsView.from_query(view.to_query()) == view
    assert RunsView().to_query() == {}


def test_a_broken_link_still_opens() -> None:
    view = RunsView.from_query({"started_from": ["not-a-date"], "parents_only": ["1"]})
    assert view.started_from is None and view.parents_only


def test_load_all_reports_a_failure_instead_of_hanging() -> None:
    from services.core.errors import ServerUnreachable
    from services.core.records import RunPage
    from services.experiments.runs import RunLoader, RunSearch

    def fetch_then_fail(ids, filter_string, order_by, size, token):  # type: ignore[no-untyped-def]
        if token is None:
            return RunPage((run("a", 1),), "next")
        raise ServerUnreachable("Cannot reach MLflow at x: connection refused.")

    loader = RunLoader(RunSearch(("1",), ("",), ()), fetch_then_fail).start()
    loader._thread.join(timeout=10)  # type: ignore[union-attr]
    assert loader.done
    assert isinstance(loader.error, ServerUnreachable)
    assert [r.run_id[0] for r in loader.runs] == ["a"]  # what arrived is kept
