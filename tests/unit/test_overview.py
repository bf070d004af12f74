"""The overview's plain-language figures and presentation settings."""

from __future__ import annotations

import pytest

from services.core.links import PRESENT_MIN_REFRESH_S, PRESENT_REFRESH_S, present_settings
from services.monitoring.runs import DriftStatus
from services.overview.fleet import ModelHealth, metric_delta


def health(metric: str, values: dict[int, float], higher: bool = True) -> ModelHealth:
    return ModelHealth(
        name="wine",
        champion=max(values),
        champion_since=None,
        approved_by=(),
        primary_metric=metric,
        higher_is_better=higher,
        metric_by_version=tuple(sorted(values.items())),
        drift=DriftStatus("green", ""),
        drift_shares=(),
        last_retrain=None,
        pending_approvals=0,
    )


def test_scores_between_0_and_1_change_in_points() -> None:
    assert metric_delta(health("eval_accuracy", {6: 0.912, 7: 0.930}), 7, 6) == (
        "eval_accuracy +1.8 pts (better)"
    )


def test_lower_is_better_metrics_say_worse_when_they_rise() -> None:
    assert metric_delta(health("eval_rmse", {1: 54.1, 2: 56.6}, higher=False), 2, 1) == (
        "eval_rmse +2.5 (worse)"
    )


def test_missing_values_give_no_delta() -> None:
    assert metric_delta(health("eval_f1", {2: 0.9}), 2, 1) == ""
    assert metric_delta(health("eval_f1", {2: 0.9}), 2, None) == ""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, (False, PRESENT_REFRESH_S, False)),
        ({"present": ["1"], "refresh": ["30"], "rotate": ["1"]}, (True, 30, True)),
        ({"present": ["1"], "refresh": ["1"]}, (True, PRESENT_MIN_REFRESH_S, False)),
        ({"present": ["yes"], "refresh": ["soon"]}, (False, PRESENT_REFRESH_S, False)),
    ],
)
def test_presentation_settings_come_from_the_url(
    query: dict[str, list[str]], expected: tuple[bool, int, bool]
) -> None:
    assert present_settings(query) == expected
