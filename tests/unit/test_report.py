"""The HTML report: self-contained, and every text escaped."""

from __future__ import annotations

from services.governance.config import DriftThresholds
from services.overview.report import report_html
from tests.report_fixtures import HOSTILE, OVERVIEW


def test_the_report_carries_plotly_and_no_external_script() -> None:
    page = report_html(OVERVIEW, DriftThresholds())
    bundle, _, rest = page.partition("</script>")  # the first script is plotly.js itself
    assert "plotly.js" in bundle.lower()
    assert "<script src" not in rest  # nothing loaded from elsewhere
    assert rest.count("Plotly.newPlot") == 4  # two charts per model, drawn inline
    assert "<h2>wine-classifier</h2>" in page


def test_untrusted_names_are_escaped() -> None:
    page = report_html(OVERVIEW, DriftThresholds())
    assert HOSTILE not in page
    assert "&lt;/script&gt;&lt;img src=x onerror=window.__xss=1&gt;" in page


def test_a_one_model_report_has_only_that_model() -> None:
    page = report_html(OVERVIEW, DriftThresholds(), model="wine-classifier")
    assert "Model health: wine-classifier" in page
    assert "&lt;/script&gt;" not in page  # the other model and its change are left out
