"""Drift charts and the Monitoring page's pure helpers: the right data, names kept as text."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.experiments.vega import svg
from services.governance.config import DriftThresholds
from services.monitoring import drift_charts
from services.monitoring import view as monitoring_view
from services.monitoring.drift import CATEGORICAL, NUMERIC, DriftSummary, FeatureDrift, Histogram
from services.monitoring.runs import AMBER, GREEN, RED, UNKNOWN, MonitoringRun
from tests.vega_spec import column, layers, spec, title

START = datetime(2026, 11, 1, tzinfo=UTC)
PAYLOAD = '</script><img src=x onerror="window.__xss=1">'


def batch(
    day: int, share: float, version: int = 3, alias: str = "champion", **scores: float
) -> MonitoringRun:
    return MonitoringRun(
        run_id=f"run{day:02d}{alias}",
        model="wine-classifier",
        version=version,
        alias=alias,
        window_start=START + timedelta(days=day),
        window_end=START + timedelta(days=day + 1),
        drift_share=share,
        drifted_columns=round(share * 10),
        dataset_drift=share >= 0.5,
        scores=scores or {"alcohol": 0.1, "colour": 0.2},
    )


def feature(
    column: str, kind: str, histogram: Histogram, drifted: bool = False, score: float = 0.01
) -> FeatureDrift:
    return FeatureDrift(
        column=column,
        kind=kind,
        method="K-S p_value" if kind == NUMERIC else "chi-square p_value",
        threshold=0.05,
        score=score,
        drifted=drifted,
        histogram=histogram,
    )


NUMERIC_FEATURE = feature(
    "alcohol",
    NUMERIC,
    Histogram(("11-12", "12-13", "13-14"), (11.0, 12.0, 13.0, 14.0), (5, 10, 5), (1, 4, 15)),
    drifted=True,
)
CATEGORICAL_FEATURE = feature(
    "colour<b>",
    CATEGORICAL,
    Histogram(("red", PAYLOAD), (), (30, 10), (10, 30)),
)


def test_drift_over_time_draws_warning_and_alarm_bands_at_the_thresholds() -> None:
    thresholds = DriftThresholds(warning_share=0.2, alarm_share=0.3, consecutive=2)
    chart = drift_charts.drift_over_time([batch(0, 0.1), batch(1, 0.4)], thresholds)

    drawn = layers(chart)
    assert [(b["from"], b["to"]) for b in drawn["bands"]] == [(0.2, 0.3), (0.3, 1.0)]
    assert [t["share"] for t in drawn["thresholds"]] == [0.2, 0.3]
    assert [t["label"] for t in drawn["threshold labels"]] == ["warning 20%", "alarm 30%"]
    assert column(chart, "shares", "share") == [0.1, 0.4]
    assert set(column(chart, "shares", "alias")) == {"@champion"}
    assert "changes" not in drawn


def test_drift_over_time_marks_where_the_monitored_version_changed() -> None:
    runs = [batch(0, 0.1, version=2), batch(1, 0.1, version=2), batch(2, 0.4, version=3)]
    chart = drift_charts.drift_over_time(runs, DriftThresholds())

    (change,) = layers(chart)["change labels"]
    assert change["change"] == "v2 → v3"
    assert datetime.fromisoformat(change["end"]) == runs[2].window_end
    assert layers(chart)["changes"] == [change]  # the dotted rule crosses the chart there


def test_drift_over_time_draws_one_line_per_alias_and_no_change_across_aliases() -> None:
    runs = [batch(0, 0.1, 3, "champion"), batch(0, 0.2, 4, "challenger")]
    chart = drift_charts.drift_over_time(runs, DriftThresholds())

    assert set(column(chart, "shares", "alias")) == {"@champion", "@challenger"}
    assert "changes" not in layers(chart)


def test_drift_over_time_without_batches_says_so() -> None:
    chart = drift_charts.drift_over_time([], DriftThresholds())

    assert list(layers(chart)) == ["empty"]
    assert "No monitoring batches" in column(chart, "empty", "message")[0]


def test_heatmap_has_one_row_per_feature_and_one_column_per_batch() -> None:
    runs = [
        batch(1, 0.5, alcohol=0.3, colour=0.6),
        batch(0, 0.1, alcohol=0.1, colour=0.2, ash=0.05),
    ]
    chart = drift_charts.drift_heatmap(runs)

    cells = {(c["column"], c["batch"]): c["score"] for c in layers(chart)["scores"]}
    # Oldest batch first; a column missing from a batch is a gap (no cell).
    assert cells == {
        ("alcohol", 0): 0.1, ("ash", 0): 0.05, ("colour", 0): 0.2,
        ("alcohol", 1): 0.3, ("colour", 1): 0.6,
    }  # fmt: skip
    encoding = spec(chart)["encoding"]
    assert encoding["y"]["sort"] == ["alcohol", "ash", "colour"]
    assert '["11-02", "11-03"]' in encoding["x"]["axis"]["labelExpr"]


def test_heatmap_keeps_column_names_as_data_never_as_fields() -> None:
    chart = drift_charts.drift_heatmap([batch(0, 0.1, **{PAYLOAD: 0.5, "a.b[0]": 0.1})])

    assert sorted(column(chart, "scores", "column")) == sorted([PAYLOAD, "a.b[0]"])
    fields = {e["field"] for e in spec(chart)["encoding"].values() if "field" in e}
    assert fields == {"batch", "column", "score"}


def test_numeric_distribution_overlays_two_histograms_as_shares() -> None:
    chart = drift_charts.feature_distribution(NUMERIC_FEATURE)

    rows = layers(chart)["histogram"]
    reference = [r for r in rows if r["sample"].startswith("Reference")]
    current = [r for r in rows if r["sample"].startswith("Current")]
    assert [r["share"] for r in reference] == [0.25, 0.5, 0.25]
    assert [r["share"] for r in current] == [0.05, 0.2, 0.75]
    assert [(r["from"], r["to"]) for r in reference] == [(11.0, 12.0), (12.0, 13.0), (13.0, 14.0)]
    assert spec(chart)["mark"]["opacity"] == drift_charts.OVERLAY_OPACITY  # both stay visible
    assert "drifted" in title(chart)


def test_numeric_distribution_as_ecdf_climbs_to_one() -> None:
    chart = drift_charts.feature_distribution(NUMERIC_FEATURE, ecdf=True)

    reference = [r for r in layers(chart)["ecdf"] if r["sample"].startswith("Reference")]
    assert [r["edge"] for r in reference] == [11.0, 12.0, 13.0, 14.0]
    assert [r["share"] for r in reference] == [0.0, 0.25, 0.75, 1.0]
    assert spec(chart)["mark"]["interpolate"] == "step-after"


def test_categorical_distribution_is_side_by_side_bars_with_labels_as_text() -> None:
    chart = drift_charts.feature_distribution(CATEGORICAL_FEATURE)

    rows = layers(chart)["bars"]
    reference = [r for r in rows if r["sample"].startswith("Reference")]
    current = [r for r in rows if r["sample"].startswith("Current")]
    assert [r["category"] for r in reference] == ["red", PAYLOAD]  # data, drawn as text by Vega
    assert [r["share"] for r in current] == [0.25, 0.75]
    assert spec(chart)["encoding"]["xOffset"]["field"] == "sample"  # side by side
    assert title(chart) == "colour<b>: reference vs current (no drift)"


def test_distribution_without_a_histogram_says_so() -> None:
    empty = feature("alcohol", NUMERIC, Histogram((), (), (), ()))

    chart = drift_charts.feature_distribution(empty)

    assert "No histogram" in column(chart, "empty", "message")[0]


def test_every_chart_renders_to_svg_with_hostile_text_escaped() -> None:
    """Vega itself accepts each spec (vl-convert draws it), and draws untrusted text as text."""
    hostile_runs = [batch(0, 0.1, version=2, **{PAYLOAD: 0.5}), batch(1, 0.6, version=3)]
    for chart in (
        drift_charts.drift_over_time(hostile_runs, DriftThresholds()),
        drift_charts.drift_heatmap(hostile_runs),
        drift_charts.feature_distribution(CATEGORICAL_FEATURE),
        drift_charts.feature_distribution(NUMERIC_FEATURE, ecdf=True),
    ):
        drawn = svg(chart)
        assert drawn.startswith("<svg") and "<script" not in drawn and "<img" not in drawn


def test_every_status_has_one_colour_and_badge() -> None:
    for level in (GREEN, AMBER, RED, UNKNOWN):
        assert drift_charts.status_color(level).startswith("#")
        assert level in drift_charts.STATUS_BADGES and level in drift_charts.STATUS_LABELS
    assert drift_charts.status_color("something else") == drift_charts.STATUS_COLORS[UNKNOWN]


# -- the page's helpers ----------------------------------------------------------------------------


def summary() -> DriftSummary:
    return DriftSummary(
        features=(CATEGORICAL_FEATURE, NUMERIC_FEATURE),
        drift_share=0.5,
        drifted_columns=1,
        dataset_drift=False,
        reference_rows=40,
        current_rows=40,
    )


def test_chosen_feature_defaults_to_the_first_drifted_one() -> None:
    assert monitoring_view.chosen_feature(summary(), "") == NUMERIC_FEATURE
    assert monitoring_view.chosen_feature(summary(), "colour<b>") == CATEGORICAL_FEATURE
    assert monitoring_view.chosen_feature(summary(), "gone") == NUMERIC_FEATURE


def test_batches_keep_the_alias_and_windows_overlapping_the_days() -> None:
    runs = [batch(day, 0.1) for day in range(5)] + [batch(2, 0.1, alias="challenger")]

    kept = monitoring_view.batches(runs, "champion", date(2026, 11, 2), date(2026, 11, 3))

    assert [r.run_id for r in kept] == ["run01champion", "run02champion"]
    assert list(monitoring_view.newest_first(kept)) == ["run02champion", "run01champion"]
    assert monitoring_view.aliases_of(runs) == ["challenger", "champion"]


def test_monitored_models_come_first() -> None:
    assert monitoring_view.monitored_first(["a", "b", "c"], ["c"]) == ["c", "a", "b"]


def test_report_file_name_is_safe() -> None:
    name = monitoring_view.report_file_name("../wine classifier", batch(0, 0.1))

    assert name == "wine_classifier-20261101-20261102.html"
