"""CSV files people download: a spreadsheet opens them as data, never as formulas.

Every CSV export in Flightdeck (the runs table, the Overview's fleet and changes) goes through
:func:`csv_export`. Names, tags and reasons come from MLflow and from people, so a cell such as
``=HYPERLINK("http://x","y")`` must reach the spreadsheet as text (OWASP: CSV injection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""Spreadsheets run a cell that starts with one of these as a formula."""


def csv_export(frame: pd.DataFrame) -> bytes:
    """The table as UTF-8 CSV, without its index; every text cell and column name that starts
    like a formula gets a leading ``'``, which spreadsheets show as text. Numbers stay numbers,
    so ``-1.5`` is left alone."""
    safe = frame.map(neutralise_formula).rename(columns=neutralise_formula)
    text: str = safe.to_csv(index=False)
    return text.encode("utf-8")


def neutralise_formula(value: object) -> object:
    """``value`` with a leading ``'`` when it is text that starts like a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
