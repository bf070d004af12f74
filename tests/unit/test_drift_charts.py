"""Drift figures and the Monitoring page's pure helpers: the right traces, escaped labels."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import plotly.graph_objects as go

from services.governance.config import DriftThresholds
from services.monitoring import drift_charts
from services.monitoring import view as monitoring_view
from services.monitoring.drift import CATEGORICAL, NUMERIC, DriftSummary, FeatureDrift, Histogram
from services.monitoring.runs import AMBER, GREEN, RED, UNKNOWN, MonitoringRun

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
    figure = drift_charts.drift_over_time([batch(0, 0.1), batch(1, 0.4)], thresholds)

    bands = [s for s in figure.layout.shapes if s.type == "rect"]
    assert sorted((s.y0, s.y1) for s in bands) == [(0.2, 0.3), (0.3, 1.0)]
    lines = {s.y0 for s in figure.layout.shapes if s.type == "line" and s.y0 == s.y1}
    assert lines == {0.2, 0.3}
    (line,) = [t for t in figure.data if t.name == "@champion"]
    assert list(line.y) == [0.1, 0.4]


def test_drift_over_time_marks_where_the_monitored_version_changed() -> None:
    runs = [batch(0, 0.1, version=2), batch(1, 0.1, version=2), batch(2, 0.4, version=3)]
    figure = drift_charts.drift_over_time(runs, DriftThresholds())

    (markers,) = [t for t in figure.data if t.name == "Version changed"]
    assert list(markers.text) == ["v2 → v3"]
    assert list(markers.x) == [runs[2].window_end]
    assert any(s.type == "line" and s.x0 == runs[2].window_end for s in figure.layout.shapes)


def test_drift_over_time_draws_one_line_per_alias_and_no_change_across_aliases() -> None:
    runs = [batch(0, 0.1, 3, "champion"), batch(0, 0.2, 4, "challenger")]
    figure = drift_charts.drift_over_time(runs, DriftThresholds())

    assert {t.name for t in figure.data} == {"@champion", "@challenger"}


def test_drift_over_time_without_batches_says_so() -> None:
    figure = drift_charts.drift_over_time([], DriftThresholds())

    assert not figure.data
    assert "No monitoring batches" in figure.layout.annotations[0].text


def test_heatmap_has_one_row_per_feature_and_one_column_per_batch() -> None:
    runs = [
        batch(1, 0.5, alcohol=0.3, colour=0.6),
        batch(0, 0.1, alcohol=0.1, colour=0.2, ash=0.05),
    ]
    figure = drift_charts.drift_heatmap(runs)

    (heatmap,) = figure.data
    assert isinstance(heatmap, go.Heatmap)
    assert list(heatmap.y) == ["alcohol", "ash", "colour"]
    # Oldest batch first; a column missing from a batch is a gap.
    assert [list(row) for row in heatmap.z] == [[0.1, 0.3], [0.05, None], [0.2, 0.6]]
    assert list(figure.layout.xaxis.ticktext) == ["11-02", "11-03"]


def test_heatmap_escapes_column_names() -> None:
    figure = drift_charts.drift_heatmap([batch(0, 0.1, **{PAYLOAD: 0.5})])

    (label,) = figure.data[0].y
    assert "<" not in label and "&lt;/script&gt;" in label


def test_numeric_distribution_overlays_two_histograms_as_shares() -> None:
    figure = drift_charts.feature_distribution(NUMERIC_FEATURE)

    reference, current = figure.data
    assert figure.layout.barmode == "overlay"
    assert list(reference.y) == [0.25, 0.5, 0.25]
    assert list(current.y) == [0.05, 0.2, 0.75]
    assert list(reference.x) == [11.5, 12.5, 13.5]
    assert "drifted" in figure.layout.title.text


def test_numeric_distribution_as_ecdf_climbs_to_one() -> None:
    figure = drift_charts.feature_distribution(NUMERIC_FEATURE, ecdf=True)

    reference, current = figure.data
    assert list(reference.x) == [11.0, 12.0, 13.0, 14.0]
    assert list(reference.y) == [0.0, 0.25, 0.75, 1.0]
    assert current.line.shape == "hv"


def test_categorical_distribution_is_side_by_side_bars_with_escaped_labels() -> None:
    figure = drift_charts.feature_distribution(CATEGORICAL_FEATURE)

    reference, current = figure.data
    assert figure.layout.barmode == "group"
    assert list(reference.x) == ["red", '&lt;/script&gt;&lt;img src=x onerror="window.__xss=1"&gt;']
    assert all("<" not in label for label in reference.x)
    assert list(current.y) == [0.25, 0.75]
    assert "colour&lt;b&gt;" in figure.layout.title.text
    assert "<b>" not in figure.layout.xaxis.title.text


def test_distribution_without_a_histogram_says_so() -> None:
    empty = feature("alcohol", NUMERIC, Histogram((), (), (), ()))

    figure = drift_charts.feature_distribution(empty)

    assert not figure.data
    assert "No histogram" in figure.layout.annotations[0].text


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
