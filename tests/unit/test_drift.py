"""Drift on synthetic frames with the real Evidently, schema checks, summaries and the status."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.core.errors import DriftError
from services.governance.config import DriftThresholds
from services.monitoring.drift import (
    CATEGORICAL,
    HISTOGRAM_BINS,
    NUMERIC,
    OTHER_LABEL,
    TARGET,
    TOP_CATEGORIES,
    DriftSummary,
    FeatureDrift,
    Histogram,
    check_schema,
    compute_drift,
    summary_from_json,
    summary_to_json,
)
from services.monitoring.readers import read_sql, read_table
from services.monitoring.runs import (
    AMBER,
    GREEN,
    RED,
    UNKNOWN,
    MonitoringRun,
    drift_status,
    metric_suffix,
    scores_frame,
)
from tests.conftest import monitoring_frame

# -- schema ---------------------------------------------------------------------------------------


def test_schema_check_lists_missing_extra_and_unsupported_columns() -> None:
    reference = monitoring_frame(50, seed=1)
    current = reference.drop(columns=["size"]).assign(
        seen_at=pd.Timestamp("2026-11-02", tz="UTC"),
        tags=[["a", "b"]] * 50,
    )
    current["site"] = [{"nested": 1}] * 50
    current["alcohol"] = pd.date_range("2026-01-01", periods=50, freq="D")

    check = check_schema(reference, current)

    assert not check.ok
    assert check.missing == ("size",)
    assert check.extra == ("seen_at", "tags")
    assert check.unsupported == ("alcohol", "site")
    message = check.message()
    for column in ("size", "seen_at", "tags", "alcohol", "site"):
        assert repr(column) in message
    assert "datetimes" in message and "nested" in message


def test_schema_check_refuses_a_column_that_changed_kind_or_holds_dates_as_text() -> None:
    reference = monitoring_frame(50, seed=1)
    current = reference.assign(size="big", alcohol="2026-11-02")
    check = check_schema(reference, current)
    assert check.unsupported == ("alcohol", "size")
    assert "dates written as text" in check.message()
    assert "numbers in the reference sample, text in the current data" in check.message()


def test_schema_check_accepts_the_same_columns_in_another_order() -> None:
    reference = monitoring_frame(50, seed=1)
    check = check_schema(reference, reference[list(reversed(reference.columns))])
    assert check.ok
    assert check.missing == check.extra == check.unsupported == ()


# -- compute_drift --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drifted() -> DriftSummary:
    reference = monitoring_frame(400, seed=1)
    return compute_drift(
        reference, monitoring_frame(300, seed=3, shift=1.0), target="target"
    ).summary


def test_drift_flags_the_shifted_numeric_and_categorical_columns_only(
    drifted: DriftSummary,
) -> None:
    flagged = {f.column for f in drifted.features if f.drifted}
    assert flagged == {"alcohol", "acidity", "site"}
    assert drifted.drifted_columns == 3
    assert drifted.drift_share == pytest.approx(3 / 5)
    assert drifted.dataset_drift  # 0.6 ≥ Evidently's 0.5
    kinds = {f.column: f.kind for f in drifted.features}
    assert kinds == {
        "alcohol": NUMERIC,
        "acidity": NUMERIC,
        "size": NUMERIC,
        "site": CATEGORICAL,
        "target": CATEGORICAL,  # integer class labels
    }
    assert next(f for f in drifted.features if f.column == "target").role == TARGET


def test_drift_histograms_share_edges_and_count_every_row(drifted: DriftSummary) -> None:
    alcohol = next(f for f in drifted.features if f.column == "alcohol").histogram
    assert len(alcohol.labels) == HISTOGRAM_BINS
    assert len(alcohol.edges) == HISTOGRAM_BINS + 1
    assert sum(alcohol.reference) == drifted.reference_rows == 400
    assert sum(alcohol.current) == drifted.current_rows == 300
    assert "–" in alcohol.labels[0]
    site = next(f for f in drifted.features if f.column == "site").histogram
    assert set(site.labels) == {"north", "south", "east"}
    assert site.edges == ()
    assert sum(site.current) == 300


def test_no_drift_between_two_samples_of_the_same_distribution() -> None:
    summary = compute_drift(
        monitoring_frame(400, seed=1), monitoring_frame(300, seed=5), target="target"
    ).summary
    assert summary.drifted_columns == 0
    assert not summary.dataset_drift
    assert all(0.05 <= f.score <= 1 for f in summary.features)  # p-values above the threshold


def test_drift_result_carries_evidently_snapshot_and_html() -> None:
    result = compute_drift(monitoring_frame(100, seed=1), monitoring_frame(100, seed=2))
    snapshot = json.loads(result.snapshot_json)
    assert {"metrics", "tests"} <= set(snapshot)
    assert result.html.lstrip().lower().startswith("<html") or "<html" in result.html[:500]


def test_drift_samples_each_side_to_max_rows_with_a_fixed_seed() -> None:
    reference, current = monitoring_frame(500, seed=1), monitoring_frame(400, seed=2)
    first = compute_drift(reference, current, max_rows=120).summary
    second = compute_drift(reference, current, max_rows=120).summary
    assert first.reference_rows == first.current_rows == 120
    assert first == second


def test_target_missing_from_the_batch_is_left_out_not_an_error() -> None:
    reference = monitoring_frame(200, seed=1)
    current = monitoring_frame(200, seed=2).drop(columns=["target"])
    summary = compute_drift(reference, current, target="target").summary
    assert "target" not in {f.column for f in summary.features}


def test_categorical_histogram_keeps_the_top_categories_and_counts_the_rest_as_other() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"code": rng.choice([f"c{i}" for i in range(40)], 400)})
    current = pd.DataFrame({"code": rng.choice([f"c{i}" for i in range(40)], 300)})
    histogram = compute_drift(reference, current).summary.features[0].histogram
    assert len(histogram.labels) == TOP_CATEGORIES + 1
    assert histogram.labels[-1] == OTHER_LABEL
    assert sum(histogram.reference) == 400 and sum(histogram.current) == 300


@pytest.mark.parametrize(
    "current",
    [
        pd.DataFrame(columns=["alcohol", "acidity", "size", "site", "target"]),
        pd.DataFrame(),
    ],
    ids=["no rows", "no columns"],
)
def test_empty_current_data_is_a_drift_error(current: pd.DataFrame) -> None:
    with pytest.raises(DriftError, match="empty"):
        compute_drift(monitoring_frame(50, seed=1), current)


def test_schema_mismatch_is_a_drift_error_naming_the_columns() -> None:
    current = monitoring_frame(50, seed=2).drop(columns=["size"]).assign(extra=1)
    with pytest.raises(DriftError, match="'size'") as raised:
        compute_drift(monitoring_frame(50, seed=1), current)
    assert "'extra'" in str(raised.value)


# -- summary JSON ---------------------------------------------------------------------------------


def test_summary_json_round_trip_keeps_every_field(drifted: DriftSummary) -> None:
    assert summary_from_json(summary_to_json(drifted)) == drifted


def test_summary_json_writes_nan_scores_as_null() -> None:
    feature = FeatureDrift(
        "x", NUMERIC, "K-S p_value", 0.05, math.nan, False, Histogram(("a",), (0, 1), (1,), (2,))
    )
    text = summary_to_json(DriftSummary((feature,), 0.0, 0, False, 1, 2))
    assert '"score":null' in text
    assert math.isnan(summary_from_json(text).features[0].score)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"format": 99}',
        '{"format": 1, "features": [], "drift_share": "high"}',
        '{"format": 1, "features": [{"column": "x"}], "drift_share": 0, "drifted_columns": 0, '
        '"dataset_drift": false, "reference_rows": 1, "current_rows": 1}',
    ],
)
def test_malformed_summary_json_is_a_drift_error(text: str) -> None:
    with pytest.raises(DriftError, match="cannot be read"):
        summary_from_json(text)


# -- reading tables -------------------------------------------------------------------------------


def test_read_table_reads_csv_and_parquet(tmp_path: Path) -> None:
    frame = monitoring_frame(20, seed=1)
    frame.to_csv(tmp_path / "batch.csv", index=False)
    frame.to_parquet(tmp_path / "batch.parquet", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "batch.parquet"), frame)
    from_csv = read_table(tmp_path / "batch.csv")
    assert list(from_csv.columns) == list(frame.columns)
    assert len(from_csv) == 20


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("batch.parquet", b"PAR1 this is not parquet", "cannot be read as PARQUET"),
        ("batch.csv", b'a,b\n1,2\n3,4,5,6\n"unterminated', "cannot be read as CSV"),
        ("batch.csv", b"", "empty"),
        ("batch.xlsx", b"whatever", "neither CSV nor Parquet"),
    ],
)
def test_read_table_turns_bad_files_into_drift_errors(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DriftError, match=expected):
        read_table(path)


def test_read_table_of_a_missing_file_is_a_drift_error(tmp_path: Path) -> None:
    with pytest.raises(DriftError, match="Cannot read"):
        read_table(tmp_path / "nope.csv")


def test_read_sql_reports_a_failing_query_without_the_password(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(DriftError, match="no such table"):
        read_sql("select * from missing", url)
    with pytest.raises(DriftError) as raised:
        read_sql("select 1", "postgresql+nosuchdriver://user:secret@host/db")
    assert "secret" not in str(raised.value)


# -- status ---------------------------------------------------------------------------------------


def run_with_share(day: int, share: float, scores: dict[str, float] | None = None) -> MonitoringRun:
    start = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=day)
    return MonitoringRun(
        run_id=f"run{day}",
        model="m",
        version=1,
        alias="champion",
        window_start=start,
        window_end=start + timedelta(days=1),
        drift_share=share,
        drifted_columns=round(share * 10),
        dataset_drift=share >= 0.5,
        scores=scores or {},
    )


THRESHOLDS = DriftThresholds(warning_share=0.2, alarm_share=0.3, consecutive=2)


def test_status_is_unknown_without_runs() -> None:
    assert drift_status([], THRESHOLDS).level == UNKNOWN


def test_status_is_green_below_the_warning_share() -> None:
    status = drift_status([run_with_share(0, 0.5), run_with_share(1, 0.1)], THRESHOLDS)
    assert status.level == GREEN
    assert "0.10" in status.reason


def test_status_is_amber_when_the_latest_batch_reaches_the_warning_share() -> None:
    runs = [run_with_share(0, 0.1), run_with_share(1, 0.35)]  # one alarm batch is not enough
    status = drift_status(runs, THRESHOLDS)
    assert status.level == AMBER
    assert "0.35" in status.reason


def test_status_is_red_when_the_last_consecutive_batches_reach_the_alarm_share() -> None:
    runs = [run_with_share(0, 0.0), run_with_share(1, 0.42), run_with_share(2, 0.38)]
    status = drift_status(runs, THRESHOLDS)
    assert status.level == RED
    assert status.reason == "drift share ≥ 0.3 in the last 2 batches (0.42, 0.38)"


def test_status_orders_runs_by_window_not_by_list_order() -> None:
    runs = [run_with_share(2, 0.4), run_with_share(0, 0.0), run_with_share(1, 0.4)]
    assert drift_status(runs, THRESHOLDS).level == RED
    assert drift_status(runs, DriftThresholds(0.2, 0.3, consecutive=3)).level == AMBER


def test_an_alarm_interrupted_by_a_calm_batch_is_not_red() -> None:
    runs = [run_with_share(0, 0.5), run_with_share(1, 0.1), run_with_share(2, 0.5)]
    assert drift_status(runs, THRESHOLDS).level == AMBER


# -- metric keys and score frames ----------------------------------------------------------------


def test_metric_suffix_replaces_characters_mlflow_rejects_and_avoids_collisions() -> None:
    assert metric_suffix("alcohol") == "alcohol"
    assert metric_suffix("price ($)/kg") == "price ____kg"
    assert metric_suffix("a?", taken={"drift_score.a_"}) == "a__2"
    assert len(metric_suffix("x" * 400)) < 250


def test_scores_frame_has_a_row_per_run_and_a_column_per_feature() -> None:
    runs = [run_with_share(0, 0.0, {"a": 0.5, "b": 0.9}), run_with_share(1, 0.5, {"a": 0.01})]
    frame = scores_frame(runs)
    assert list(frame.columns) == ["a", "b"]
    assert len(frame) == 2
    assert math.isnan(frame["b"].iloc[1])
    assert scores_frame([]).empty
