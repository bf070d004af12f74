"""A hand-built overview for export tests: two models, one with a hostile name."""

from __future__ import annotations

from datetime import UTC, datetime

from services.monitoring.runs import DriftStatus
from services.overview.fleet import Change, FleetCounts, ModelHealth, Overview

HOSTILE = "</script><img src=x onerror=window.__xss=1>"
AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def health(name: str, level: str = "red") -> ModelHealth:
    return ModelHealth(
        name=name,
        champion=3,
        champion_since=AT,
        approved_by=("ben",),
        primary_metric="eval_f1",
        higher_is_better=True,
        metric_by_version=((1, 0.91), (2, 0.94), (3, 0.96)),
        drift=DriftStatus(level, "drift share ≥ 0.3 in the last 2 batches (0.40, 0.41)"),
        drift_shares=(0.05, 0.1, 0.2, 0.35, 0.41),
        last_retrain=None,
        pending_approvals=1,
    )


OVERVIEW = Overview(
    models=(health("wine-classifier"), health(HOSTILE, "green")),
    counts=FleetCounts(models=2, in_alarm=1, pending_approvals=2, retrains_this_week=0),
    changes=(Change(AT, HOSTILE, "promotion", f"{HOSTILE} v3 became champion on 24 Nov."),),
    at=AT,
)
