"""CSV exports: one formula-safe helper, and every export goes through it."""

from __future__ import annotations

import csv
import io
import re

import pandas as pd

from services.core.exports import FORMULA_PREFIXES, csv_export
from services.core.settings import PROJECT_ROOT


def cells(exported: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(exported.decode("utf-8"))))


def test_csv_neutralises_formulas_but_not_numbers() -> None:
    frame = pd.DataFrame(
        {"name": ['=HYPERLINK("x")', "+1", "-cmd", "@SUM(A1)", "ok"], "value": [-1.5, 2, 3, 4, 5]}
    )
    text = csv_export(frame).decode()
    assert "'=HYPERLINK" in text and "'+1" in text and "'-cmd" in text and "'@SUM" in text
    assert "\nok,5" in text  # plain text is left alone
    assert ",-1.5" in text  # so are negative numbers


def test_every_formula_prefix_is_neutralised_in_cells_and_column_names() -> None:
    hostile = [f'{prefix}HYPERLINK("http://x","y")' for prefix in FORMULA_PREFIXES]
    frame = pd.DataFrame({name: [name] for name in hostile})
    for row in cells(csv_export(frame)):
        for cell in row:
            assert cell.startswith("'") and cell[1:] in hostile, row


def test_no_page_or_service_writes_csv_except_through_the_helper() -> None:
    """A new export that calls ``to_csv`` itself would skip the neutralising."""
    exporter = PROJECT_ROOT / "services" / "core" / "exports.py"
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}"
        for folder in ("pages", "services", "jobs")
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        if path != exporter
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\.to_csv\(|csv\.writer\(|csv\.DictWriter\(", line)
    ]
    assert not offenders, offenders
