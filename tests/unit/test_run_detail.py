"""Run detail tables and text: pure logic, no server."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from services.core.records import DatasetSummary, MetricPoint, ModelVersionSummary, Run
from services.experiments.run_detail import (
    child_runs_filter,
    child_runs_table,
    datasets_table,
    duration_text,
    format_duration,
    format_time,
    key_value_table,
    metric_summary,
    metrics_overview,
    metrics_table,
    model_versions_filter,
    model_versions_table,
    runs_page_query,
    selected_run_id,
    status_badge,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
RUN_ID = "0123456789abcdef0123456789abcdef"


def make_run(run_id: str = RUN_ID, **fields: object) -> Run:
    values: dict[str, object] = {
        "experiment_id": "1",
        "name": "run",
        "status": "FINISHED",
        "start_time": T0,
        "end_time": T0 + timedelta(seconds=95),
        "user": "alice",
        "deleted": False,
    }
    values.update(fields)
    return Run(run_id=run_id, **values)  # type: ignore[arg-type]


def points(*values: float) -> list[MetricPoint]:
    return [MetricPoint(step, 0, value) for step, value in enumerate(values)]


def test_metric_range_skips_nan_and_keeps_infinity() -> None:
    summary = metric_summary("loss", math.nan, points(0.5, math.nan, math.inf, 0.1))
    assert (summary.minimum, summary.maximum, summary.points) == (0.1, math.inf, 4)
    assert math.isnan(summary.last)


def test_metrics_whose_last_value_is_nan_are_named() -> None:
    run = make_run(metrics={"ok": 1.0, "bad": math.nan})
    assert metrics_overview(run, lambda key: []).nan_keys == ("bad",)


def test_metric_range_of_only_nan_is_empty() -> None:
    summary = metric_summary("loss", math.nan, points(math.nan))
    assert summary.minimum is None and summary.maximum is None


def test_histories_are_read_only_for_the_first_keys_by_name() -> None:
    run = make_run(metrics={f"m{i:03}": float(i) for i in range(60)})
    asked: list[str] = []

    def history_of(key: str) -> list[MetricPoint]:
        asked.append(key)
        return points(-1.0, 99.0)

    overview = metrics_overview(run, history_of, max_ranged=50)
    assert asked == [f"m{i:03}" for i in range(50)]
    assert overview.capped and overview.ranged == 50
    table = metrics_table(overview)
    assert len(table) == 60
    assert table["Min"].iloc[0] == -1.0 and table["Max"].iloc[0] == 99.0
    assert table["Last"].iloc[59] == 59.0
    assert table["Min"].isna().iloc[59] and table["Points"].isna().iloc[59]


def test_a_run_without_metrics_has_an_empty_overview() -> None:
    overview = metrics_overview(make_run(), lambda key: [])
    assert overview.summaries == () and not overview.capped
    assert metrics_table(overview).columns.tolist() == ["Metric", "Last", "Min", "Max", "Points"]


def test_params_are_sorted_text_kept_verbatim() -> None:
    table = key_value_table({"b": "<script>alert(1)</script>", "a": "**x**"}, "Param")
    assert table.values.tolist() == [["a", "**x**"], ["b", "<script>alert(1)</script>"]]
    assert key_value_table({}, "Tag").columns.tolist() == ["Tag", "Value"]


def test_datasets_table_lists_each_input() -> None:
    run = make_run(datasets=(DatasetSummary("train", "abc", "code", "training", None),))
    table = datasets_table(run)
    assert table["Dataset"].tolist() == ["train"]
    assert table["Rows"].isna().all()


def test_model_versions_are_sorted_by_model_and_version() -> None:
    versions = [
        ModelVersionSummary("b", 1, RUN_ID, T0, "READY", ""),
        ModelVersionSummary("a", 2, RUN_ID, T0, "READY", "", aliases=("champion",)),
    ]
    table = model_versions_table(versions)
    assert table[["Model", "Version", "Aliases"]].values.tolist() == [
        ["a", 2, "champion"],
        ["b", 1, ""],
    ]


def test_child_runs_table_has_a_column_per_metric_and_finds_the_selected_id() -> None:
    other = "f" * 32
    table = child_runs_table(
        [make_run(metrics={"acc": 0.9}), make_run(other, metrics={"loss": 0.1}, end_time=None)]
    )
    assert table.columns.tolist() == [
        "Run",
        "Run ID",
        "Status",
        "Started",
        "Duration (s)",
        "acc",
        "loss",
    ]
    assert table["Duration (s)"].tolist()[0] == 95.0
    assert selected_run_id(table, [1]) == other
    assert selected_run_id(table, []) is None
    assert selected_run_id(table, [5]) is None


@pytest.mark.parametrize(
    ("status", "color"),
    [
        ("FINISHED", "green"),
        ("FAILED", "red"),
        ("RUNNING", "blue"),
        ("KILLED", "orange"),
        ("SOMETHING", "gray"),
    ],
)
def test_each_status_has_one_badge_colour(status: str, color: str) -> None:
    assert status_badge(status).color == color


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250 ms"),
        (42.34, "42.3 s"),
        (185, "3 min 05 s"),
        (7440, "2 h 04 min"),
        (696 * 3600, "29 d 00 h"),
    ],
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


def test_a_running_run_shows_its_time_so_far_and_an_unstarted_one_a_dash() -> None:
    running = make_run(status="RUNNING", end_time=None)
    assert duration_text(running, T0 + timedelta(seconds=10)) == "10.0 s so far"
    assert duration_text(make_run(start_time=None, end_time=None), T0) == "—"
    assert duration_text(make_run(), T0) == "1 min 35 s"
    assert format_time(T0) == "2026-11-01 12:00:00 UTC" and format_time(None) == "—"


def test_filters_accept_only_real_run_ids() -> None:
    assert child_runs_filter(RUN_ID) == f"tags.mlflow.parentRunId = '{RUN_ID}'"
    assert model_versions_filter(RUN_ID) == f"run_id = '{RUN_ID}'"
    with pytest.raises(ValueError):
        model_versions_filter("x' OR name = 'y")


def test_the_link_back_opens_the_runs_page_on_the_experiment() -> None:
    assert runs_page_query("7") == {"experiment_ids": ["7"]}
