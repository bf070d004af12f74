"""The PDF export: real headless Chromium prints the HTML report; its text names each model."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from services.governance.config import DriftThresholds
from services.overview.report import html_to_pdf, report_html
from tests.report_fixtures import OVERVIEW

pytestmark = pytest.mark.integration


def test_the_pdf_holds_every_model_name() -> None:
    pdf = html_to_pdf(report_html(OVERVIEW, DriftThresholds()))
    assert pdf.startswith(b"%PDF")
    pages = PdfReader(io.BytesIO(pdf)).pages
    words = " ".join(" ".join(page.extract_text() for page in pages).split())
    assert "wine-classifier" in words
    assert "onerror=window.__xss=1" in words  # the hostile name, shown as text
    assert "pending approvals" in words
