from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.core.formatting import ago, escape_markdown
from services.core.records import Experiment, ExperimentActivity, RunCount
from services.experiments.listing import experiments_table, filter_by_name, format_tags

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def experiment(experiment_id: str, name: str, **tags: str) -> Experiment:
    return Experiment(experiment_id, name, False, T0, T0, "", tags)


def test_name_filter_ignores_case_and_blank_means_all() -> None:
    items = [experiment("1", "Wine-Classification"), experiment("2", "diabetes")]
    assert [e.name for e in filter_by_name(items, "WINE")] == ["Wine-Classification"]
    assert filter_by_name(items, "  ") == items


def test_last_update_is_the_newest_run_when_runs_are_newer_than_the_experiment() -> None:
    newer = T0 + timedelta(days=3)
    table = experiments_table(
        [experiment("1", "a"), experiment("2", "b")],
        {
            "1": ExperimentActivity(RunCount(12, True), newer),
            "2": ExperimentActivity(RunCount(1000, False), None),
        },
    )
    assert table["Last update"].tolist() == [newer, T0]
    assert table["Runs"].tolist() == ["12", "1,000+"]


def test_tags_are_sorted_key_value_pairs() -> None:
    assert format_tags({"team": "x", "owner": "y"}) == "owner=y, team=x"


def test_untrusted_markdown_is_shown_literally() -> None:
    assert escape_markdown("[x](javascript:alert(1)) **b**") == (
        "\\[x\\]\\(javascript\\:\u2060alert\\(1\\)\\) \\*\\*b\\*\\*"
    )  # every punctuation mark escaped; a word joiner after the colon breaks the scheme


def test_ago_reads_naturally() -> None:
    assert ago(T0, T0 + timedelta(seconds=5)) == "5 s ago"
    assert ago(T0, T0 + timedelta(minutes=3)) == "3 min ago"
    assert ago(T0, T0 + timedelta(hours=2)) == "2 h ago"
