"""The HTML report: self-contained, and every text escaped."""

from __future__ import annotations

from services.governance.config import DriftThresholds
from services.overview.charts import drift_sparkline, metric_trend
from services.overview.report import report_html
from tests.report_fixtures import HOSTILE, OVERVIEW
from tests.vega_spec import column, layers


def test_the_report_draws_its_charts_as_inline_svg_and_runs_no_script() -> None:
    page = report_html(OVERVIEW, DriftThresholds())
    assert "<script" not in page  # nothing to run, nothing loaded from elsewhere
    assert page.count("<svg") == 4  # two charts per model
    assert "eval_f1 by version" in page and "Drift, last 5 batches" in page
    assert "<h2>wine-classifier</h2>" in page


def test_card_charts_draw_the_versions_the_champion_and_the_alarm_line() -> None:
    model = OVERVIEW.models[0]
    trend = metric_trend(model)
    assert column(trend, "versions", "value") == [0.91, 0.94, 0.96]
    assert layers(trend)["champion"] == [{"version": "v3", "value": 0.96}]
    sparkline = drift_sparkline(model, DriftThresholds(alarm_share=0.3))
    assert column(sparkline, "shares", "share") == [0.05, 0.1, 0.2, 0.35, 0.41]
    assert layers(sparkline)["alarm"] == [{"share": 0.3}]


def test_untrusted_names_are_escaped() -> None:
    page = report_html(OVERVIEW, DriftThresholds())
    assert HOSTILE not in page
    assert "&lt;/script&gt;&lt;img src=x onerror=window.__xss=1&gt;" in page


def test_a_one_model_report_has_only_that_model() -> None:
    page = report_html(OVERVIEW, DriftThresholds(), model="wine-classifier")
    assert "Model health: wine-classifier" in page
    assert "&lt;/script&gt;" not in page  # the other model and its change are left out
