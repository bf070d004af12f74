from __future__ import annotations

import math
from datetime import UTC, datetime

from services.core.links import CompareView
from services.core.records import MetricPoint, Run
from services.experiments import chart_data, charts, compare
from services.experiments.history import history_series
from services.experiments.history_chart import history_chart
from services.experiments.vega import svg
from services.experiments.version_metrics import VersionMetric
from tests.vega_spec import column, layers, spec

T0 = datetime(2026, 11, 1, tzinfo=UTC)
EVIL = "<b>bold</b><img src=x onerror=alert(1)>"


def run(run_id: str, name: str, metrics: dict[str, float], params: dict[str, str]) -> Run:
    return Run(run_id.ljust(32, "0"), "1", name, "FINISHED", T0, T0, "u", False, metrics, params)


def sweep() -> list[Run]:
    return [
        run("a", "A", {"acc": 0.9, "loss": 0.2}, {"lr": "0.1", "kind": "gbm", "depth": "3"}),
        run("b", "B", {"acc": 0.8, "loss": math.nan}, {"lr": "0.3", "kind": "rf", "depth": "None"}),
        run("c", "C", {"acc": math.inf, "loss": 0.4}, {"lr": "0.3", "kind": "gbm"}),
    ]


def test_every_run_gets_a_colour_and_colours_repeat_only_after_the_palette() -> None:
    ids = [str(i) for i in range(len(charts.PALETTE) + 1)]
    colors = charts.run_colors(ids)
    assert len(set(list(colors.values())[: len(charts.PALETTE)])) == len(charts.PALETTE)
    assert colors[ids[-1]] == colors[ids[0]]


def test_history_chart_draws_one_named_line_per_run() -> None:
    history = {
        "r1": [MetricPoint(0, 0, 1.0), MetricPoint(1, 1, 0.5)],
        "r2": [MetricPoint(0, 0, 2.0), MetricPoint(1, 1, math.nan)],
    }
    series = history_series(history)
    chart = history_chart(
        "loss", series, {"r1": "first", "r2": "second"}, charts.run_colors(["r1", "r2"])
    )
    rows = layers(chart)["lines"]
    assert [(r["run"], r["x"], r["y"]) for r in rows] == [
        ("first", 0, 1.0), ("first", 1, 0.5), ("second", 0, 2.0),
    ]  # fmt: skip
    line, _points = spec(chart)["layer"]
    assert line["encoding"]["color"]["scale"]["range"] == list(charts.PALETTE[:2])
    assert line["encoding"]["y"]["scale"]["type"] == "linear"
    assert "single points" in layers(chart)  # r2 has one finite value: a line cannot show it


def test_legend_moves_beside_the_chart_when_many_runs_are_drawn() -> None:
    many = {str(i): [MetricPoint(0, 0, 1.0)] for i in range(charts.LEGEND_BELOW_MAX_ENTRIES + 1)}
    few = dict(list(many.items())[:2])

    def legend(history: dict[str, list[MetricPoint]]) -> str:
        return str(spec(history_chart("m", history_series(history), {}, {}))["layer"][0]
                   ["encoding"]["color"]["legend"]["orient"])  # fmt: skip

    assert legend(few) == "bottom"
    assert legend(many) == "right"


def test_smoothed_history_keeps_a_faint_raw_line_behind() -> None:
    series = history_series(
        {"r1": [MetricPoint(s, s, float(s % 2)) for s in range(5)]}, "step", 0.8
    )
    chart = history_chart("loss", series, {"r1": "run"}, {})
    raw, _smoothed = spec(chart)["layer"]
    assert raw["name"] == "raw" and raw["mark"]["opacity"] == charts.RAW_LINE_OPACITY
    assert column(chart, "raw", "y") == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert column(chart, "lines", "y") == list(series[0].smoothed)


def test_wall_time_is_a_utc_time_axis_and_log_scale_a_log_axis() -> None:
    series = history_series({"r1": [MetricPoint(0, 1_700_000_000_000, 1.0)]}, "wall")
    (line, _) = spec(history_chart("m", series, {}, {}, "wall", log_scale=True))["layer"]
    assert line["encoding"]["x"]["type"] == "temporal"
    assert line["encoding"]["x"]["scale"]["type"] == "utc"
    assert line["encoding"]["y"]["scale"]["type"] == "log"
    assert column(history_chart("m", series, {}, {}, "wall"), "lines", "x") == [
        "2023-11-14T22:13:20+00:00"
    ]


def test_history_chart_without_values_says_so() -> None:
    chart = history_chart("loss", [], {}, {})
    assert "No finite values" in column(chart, "empty", "message")[0]


def test_run_names_stay_text_in_the_data_and_vega_draws_them_escaped() -> None:
    series = history_series({"r1": [MetricPoint(0, 0, 1.0), MetricPoint(1, 1, 2.0)]})
    chart = history_chart("m", series, {"r1": EVIL}, {})
    assert set(column(chart, "lines", "run")) == {EVIL}
    drawn = svg(chart)
    assert "<img" not in drawn and "&lt;img" in drawn  # the legend label, as text


def test_parallel_coordinates_maps_text_params_to_ticks_and_keeps_numbers() -> None:
    frame = chart_data.chart_frame(sweep())
    figure = charts.parallel_coordinates(
        frame, ["params.lr", "params.kind", "params.depth"], "metrics.acc"
    )
    lr, kind, depth, metric = figure.data[0].dimensions
    assert list(lr.values) == [0.1, 0.3]  # run C has acc=inf and is left out
    assert list(kind.ticktext) == ["gbm", "rf"]
    assert list(kind.values) == [0, 1]
    assert list(depth.ticktext) == ["3", "None"]
    assert list(metric.values) == [0.9, 0.8]


def test_numeric_param_with_a_gap_becomes_ticks_with_a_missing_label() -> None:
    frame = chart_data.chart_frame(
        [run("a", "A", {"m": 1.0}, {"depth": "3"}), run("b", "B", {"m": 2.0}, {})]
    )
    (depth, _) = (
        charts.parallel_coordinates(frame, ["params.depth"], "metrics.m").data[0].dimensions
    )
    assert list(depth.ticktext) == ["3", charts.MISSING_LABEL]


def test_parallel_coordinates_colour_scale_flips_when_lower_is_better() -> None:
    frame = chart_data.chart_frame(sweep())
    figure = charts.parallel_coordinates(frame, ["params.lr"], "metrics.loss", True)
    assert figure.data[0].line.reversescale is True


def test_parallel_coordinates_without_finite_metric_values_says_so() -> None:
    frame = chart_data.chart_frame([run("a", "A", {"m": math.nan}, {}), run("b", "B", {}, {})])
    figure = charts.parallel_coordinates(frame, [], "metrics.m")
    assert not figure.data
    assert "No run has a finite value" in figure.layout.annotations[0].text


def test_scatter_leaves_out_runs_with_non_finite_values_and_names_points() -> None:
    frame = chart_data.chart_frame(sweep())
    figure = charts.scatter_chart(frame, "params.lr", "metrics.acc")
    assert list(figure.data[0].x) == [0.1, 0.3]
    assert list(figure.data[0].text) == ["A", "B"]


def test_scatter_of_a_text_param_uses_category_labels() -> None:
    frame = chart_data.chart_frame(sweep())
    figure = charts.scatter_chart(frame, "params.depth", "metrics.loss")
    assert list(figure.data[0].x) == ["3", charts.MISSING_LABEL]


def test_box_plot_has_one_box_per_param_value_in_numeric_order() -> None:
    runs = [run(f"{i}", f"R{i}", {"acc": 0.5 + i / 10}, {"lr": lr}) for i, lr in enumerate("31")]
    runs.append(run("9", "R9", {"acc": 0.1}, {"lr": "10"}))
    figure = charts.box_chart(chart_data.chart_frame(runs), "metrics.acc", "params.lr")
    assert [box.name for box in figure.data] == ["1", "3", "10"]


def test_box_plot_drops_non_finite_metric_values() -> None:
    figure = charts.box_chart(chart_data.chart_frame(sweep()), "metrics.acc", "params.kind")
    assert sum(len(box.y) for box in figure.data) == 2


def test_version_trend_marks_each_alias_holder() -> None:
    trend = [
        VersionMetric(1, "r1", 0.7, ()),
        VersionMetric(2, "r2", None, ()),
        VersionMetric(3, "r3", 0.9, ("champion",)),
        VersionMetric(4, "r4", 0.95, ("challenger",)),
    ]
    figure = charts.version_trend_chart("wine", "acc", trend)
    line, holders = figure.data
    assert list(line.y) == [0.7, None, 0.9, 0.95]
    assert list(holders.x) == [3, 4]
    assert list(holders.text) == ["@champion", "@challenger"]
    assert list(figure.layout.xaxis.ticktext) == ["v1", "v2", "v3", "v4"]


def test_version_trend_without_values_says_so() -> None:
    figure = charts.version_trend_chart("m", "acc", [VersionMetric(1, "", math.nan, ())])
    assert "No version" in figure.layout.annotations[0].text


def test_best_cells_are_highlighted_in_the_metrics_table() -> None:
    runs = sweep()
    comparison = compare.compare_metrics(runs, CompareView())
    html = charts.highlight_best(comparison, runs).to_html()
    highlighted = html.split("{", 1)[0]  # the CSS selector of the cells with the best style
    a_column = comparison.table.columns.get_loc("A")
    assert charts.BEST_CELL_STYLE.split(";")[0] in html
    assert f"_row0_col{a_column}," in highlighted  # acc: A's 0.9 beats 0.8 and inf
    assert f"_row1_col{a_column}" in highlighted  # loss: A's 0.2 beats 0.4 and NaN
    assert highlighted.count("_row") == 2


def test_a_metric_across_500_versions_labels_only_some_of_them() -> None:
    figure = charts.version_metric_chart([(v, v / 500) for v in range(1, 501)], "acc", [])
    assert figure.layout.xaxis.ticktext is None and figure.layout.xaxis.tickprefix == "v"
    assert len(figure.data[0].x) == 500  # every version is still drawn
    few = charts.version_metric_chart([(1, 0.5), (2, 0.6)], "acc", [])
    assert list(few.layout.xaxis.ticktext) == ["v1", "v2"]
