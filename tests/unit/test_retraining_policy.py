"""Retraining policies: cron, triggers, guards, backtest, and their configuration."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.core.errors import ConfigurationError
from services.governance.config import DriftThresholds, RetrainingPolicy, parse_governance
from services.monitoring.runs import MonitoringRun
from services.retraining.cron import CronSchedule
from services.retraining.policy import (
    BLOCKED,
    DECAY,
    DRIFT,
    FIRED,
    SCHEDULE,
    DecayBaseline,
    backtest,
    decide,
)

START = datetime(2026, 10, 1, tzinfo=UTC)
THRESHOLDS = DriftThresholds(warning_share=0.2, alarm_share=0.3, consecutive=2)


def batches(shares: list[float], performance: list[float] | None = None) -> list[MonitoringRun]:
    """Daily batches: batch i covers day i and ends at midnight of day i + 1."""
    return [
        MonitoringRun(
            run_id=f"run-{i}",
            model="m",
            version=1,
            alias="champion",
            window_start=START + timedelta(days=i),
            window_end=START + timedelta(days=i + 1),
            drift_share=share,
            drifted_columns=int(share * 10),
            dataset_drift=share >= 0.5,
            performance={"eval_f1": performance[i]} if performance else {},
        )
        for i, share in enumerate(shares)
    ]


def day(n: int, hour: int = 0) -> datetime:
    return START + timedelta(days=n, hours=hour)


# -- cron -----------------------------------------------------------------------------------------


def test_cron_fires_at_the_listed_minutes_in_utc() -> None:
    schedule = CronSchedule.parse("30 3 * * 1")  # Mondays 03:30
    fired = list(schedule.fire_times(datetime(2026, 11, 1, tzinfo=UTC), day(60)))
    assert fired[0] == datetime(2026, 11, 2, 3, 30, tzinfo=UTC)
    assert all(t.weekday() == 0 and (t.hour, t.minute) == (3, 30) for t in fired)
    assert [b - a for a, b in itertools.pairwise(fired)] == [timedelta(days=7)] * (len(fired) - 1)


def test_cron_steps_ranges_lists_and_sunday_as_seven() -> None:
    schedule = CronSchedule.parse("*/15 9-10 * * 0,7")
    assert schedule.minutes == {0, 15, 30, 45}
    assert schedule.hours == {9, 10}
    assert schedule.weekdays == {0}
    assert schedule.day_matches(datetime(2026, 11, 22, tzinfo=UTC))  # a Sunday
    assert not schedule.day_matches(datetime(2026, 11, 23, tzinfo=UTC))


def test_cron_with_both_day_fields_fires_on_either() -> None:
    schedule = CronSchedule.parse("0 0 1 * 1")  # the 1st, or any Monday
    assert schedule.day_matches(datetime(2026, 12, 1, tzinfo=UTC))  # a Tuesday, the 1st
    assert schedule.day_matches(datetime(2026, 11, 23, tzinfo=UTC))  # a Monday
    assert not schedule.day_matches(datetime(2026, 11, 24, tzinfo=UTC))


def test_last_fire_is_the_latest_in_the_window() -> None:
    schedule = CronSchedule.parse("0 * * * *")
    now = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
    assert schedule.last_fire(now - timedelta(hours=3), now) == now.replace(minute=0)
    assert schedule.last_fire(now - timedelta(minutes=20), now) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 3 * *", "five fields"),
        ("61 * * * *", "out of range"),
        ("0 3 * * mon", "not a valid"),
        ("*/0 * * * *", "out of range"),
    ],
)
def test_invalid_cron_is_refused_with_what_would_work(expression: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CronSchedule.parse(expression)


# -- decide ---------------------------------------------------------------------------------------


def test_drift_fires_after_n_red_batches_in_a_row() -> None:
    policy = RetrainingPolicy(drift_red_batches=3)
    history = batches([0.1, 0.35, 0.4, 0.1, 0.31, 0.33, 0.5])
    assert decide(policy, "m", day(6), history[:6], [], THRESHOLDS) is None  # only 2 in a row
    decision = decide(policy, "m", day(7), history, [], THRESHOLDS)
    assert decision is not None
    assert (decision.trigger, decision.outcome) == (DRIFT, FIRED)
    assert decision.cause == decision.cause_run_id == "run-6"
    assert "0.31, 0.33, 0.50" in decision.reason


def test_drift_counts_only_batches_since_the_last_retrain() -> None:
    policy = RetrainingPolicy(drift_red_batches=2, cooldown_hours=0)
    history = batches([0.4, 0.4, 0.4])
    assert decide(policy, "m", day(3), history, [day(2, hour=12)], THRESHOLDS) is None
    fired = decide(policy, "m", day(3), history, [day(1, hour=12)], THRESHOLDS)
    assert fired is not None and "since the last retrain" in fired.reason


def test_cooldown_blocks_and_says_until_when() -> None:
    policy = RetrainingPolicy(drift_red_batches=1, cooldown_hours=48)
    history = batches([0.4, 0.4])
    decision = decide(policy, "m", day(2), history, [day(1, hour=6)], THRESHOLDS)
    assert decision is not None and decision.outcome == BLOCKED
    assert "cooldown of 48 h" in decision.reason and "until 2026-10-04 06:00 UTC" in decision.reason


def test_budget_blocks_after_k_retrains_in_seven_days() -> None:
    policy = RetrainingPolicy(schedule="0 12 * * *", cooldown_hours=0, max_per_week=2)
    retrains = [day(1), day(3)]
    blocked = decide(policy, "m", day(5), [], retrains, THRESHOLDS, schedule_fired=day(5))
    assert blocked is not None and blocked.outcome == BLOCKED
    assert "budget of 2 retrains in 7 days" in blocked.reason
    later = decide(policy, "m", day(9), [], retrains, THRESHOLDS, schedule_fired=day(9))
    assert later is not None and later.outcome == FIRED


def test_decay_fires_when_a_labelled_batch_falls_below_the_champion() -> None:
    policy = RetrainingPolicy(decay_threshold=0.05)
    baseline = DecayBaseline("eval_f1", champion_score=0.90, higher_is_better=True)
    history = batches([0.1, 0.1], performance=[0.88, 0.84])
    assert decide(policy, "m", day(1), history[:1], [], THRESHOLDS, baseline=baseline) is None
    decision = decide(policy, "m", day(2), history, [], THRESHOLDS, baseline=baseline)
    assert decision is not None and decision.trigger == DECAY
    assert "0.84" in decision.reason and "0.9" in decision.reason


def test_lower_is_better_decay_direction() -> None:
    policy = RetrainingPolicy(decay_threshold=5.0)
    baseline = DecayBaseline("eval_rmse", champion_score=50.0, higher_is_better=False)
    history = [replace(batches([0.0])[0], performance={"eval_rmse": 56.0})]
    decision = decide(policy, "m", day(1), history, [], THRESHOLDS, baseline=baseline)
    assert decision is not None and decision.trigger == DECAY


def test_drift_outranks_schedule_in_one_evaluation() -> None:
    policy = RetrainingPolicy(schedule="0 0 * * *", drift_red_batches=1)
    decision = decide(policy, "m", day(1), batches([0.5]), [], THRESHOLDS, schedule_fired=day(1))
    assert decision is not None and decision.trigger == DRIFT


def test_manual_only_policy_never_fires() -> None:
    policy = RetrainingPolicy()
    assert not policy.automatic
    assert backtest(policy, "m", batches([0.9] * 10), THRESHOLDS) == []


# -- backtest -------------------------------------------------------------------------------------


def test_backtest_replays_its_own_retrains_against_the_guards() -> None:
    policy = RetrainingPolicy(drift_red_batches=2, cooldown_hours=72, max_per_week=5)
    history = batches([0.1] * 5 + [0.4] * 10)
    decisions = backtest(policy, "m", history, THRESHOLDS)
    fired = [d for d in decisions if d.fired]
    blocked = [d for d in decisions if not d.fired]
    assert fired[0].at == day(7)  # batches 5 and 6 red: fires at the end of batch 6
    assert all(b.at - a.at >= timedelta(hours=72) for a, b in itertools.pairwise(fired))
    assert blocked and all("cooldown" in d.reason for d in blocked)
    assert len({(d.trigger, d.cause) for d in decisions}) == len(decisions)


def test_backtest_lists_schedule_fire_times_in_the_history() -> None:
    policy = RetrainingPolicy(schedule="0 6 * * 1", cooldown_hours=0, max_per_week=9)
    decisions = backtest(policy, "m", batches([0.0] * 21), THRESHOLDS)
    assert [d.trigger for d in decisions] == [SCHEDULE] * 3
    assert all(d.at.weekday() == 0 and d.at.hour == 6 for d in decisions)


# -- configuration --------------------------------------------------------------------------------


def test_policies_parse_per_model_over_the_default() -> None:
    governance = parse_governance(
        {
            "retraining": {
                "default": {"cooldown_hours": 12, "max_per_week": 1},
                "models": {"wine": {"drift_red_batches": 3, "schedule": "0 3 * * 1"}},
            }
        }
    )
    wine = governance.retraining_for("wine")
    assert (wine.drift_red_batches, wine.cooldown_hours, wine.max_per_week) == (3, 12.0, 1)
    assert wine.automatic
    assert not governance.retraining_for("other").automatic


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"auto_approve": True}, "only be on for a target other than champion or Production"),
        ({"schedule": "every monday"}, "five fields"),
        ({"max_per_week": -1}, "cannot be negative"),
        ({"drift_red_batches": "3"}, "wrong type"),
        ({"cooldown": 3}, "unknown setting cooldown"),
    ],
)
def test_bad_policies_are_refused(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_governance({"retraining": {"default": section}})


def test_auto_approve_is_allowed_for_a_non_production_alias() -> None:
    governance = parse_governance(
        {"retraining": {"default": {"auto_approve": True, "promote_to": "challenger"}}}
    )
    assert governance.default_retraining.auto_approve
