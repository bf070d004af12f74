"""Small text and time helpers shared by pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_markdown(text: str) -> str:
    """Untrusted text made safe for Streamlit's Markdown: every special character is literal."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


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
