"""Small text and time helpers shared by pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
"""CommonMark lets a backslash make any ASCII punctuation literal; escaping all of it leaves no
syntax (links, images, HTML, emphasis, headings, tables, math, ``:color[...]`` directives)."""
_WORD_JOINER = "\u2060"
"""Invisible, and not a letter, digit or punctuation: it breaks the patterns below apart."""
_AUTOLINKED = re.compile(
    r"(?<=:)(?=\S)|(?<=[-.\w+])(?=@)|(?<=www)(?=\.)|(?<=-)(?=-)|(?<=\.)(?=\.)", re.IGNORECASE
)
"""Where Streamlit still changes text that has no Markdown syntax left: GitHub-style autolinks
run on the decoded text (``http://…``, ``www.…``, ``name@host``), and so do ``:material/…:``
icons, ``:red[…]``, emoji shortcodes and typographic dashes (``--`` becomes a dash). A word
joiner after a colon that something follows, before an ``@`` that ends a name, between ``www``
and its dot, and between repeated hyphens or dots keeps them plain text that reads the same
(``@champion`` and ``rmse: 54`` stay untouched)."""


def escape_markdown(text: str) -> str:
    """Untrusted text made safe for Streamlit's Markdown (``st.markdown``, headers, captions,
    alerts, and every label and help text): it shows literally, as plain text, with no link,
    image, HTML, icon, colour or formatting from it."""
    return _ASCII_PUNCTUATION.sub(r"\\\1", _AUTOLINKED.sub(_WORD_JOINER, text))


def escape_heading(text: str) -> str:
    """Untrusted text for a title or header: escaped, on one line (a line break would end the
    heading and spill the rest of a name into the page)."""
    return escape_markdown(" ".join(text.splitlines()))


def ago(moment: datetime, now: datetime | None = None) -> str:
    """A short relative time such as "12 s ago" or "3 min ago"."""
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def mlflow_experiment_url(tracking_uri: str, experiment_id: str) -> str:
    """The same experiment in MLflow's own UI."""
    return f"{tracking_uri}/#/experiments/{experiment_id}"


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The same run in MLflow's own UI."""
    return f"{tracking_uri}/#/experiments/{experiment_id}/runs/{run_id}"
