"""``python -m jobs.monitor`` against a real MLflow server, and the monitoring runs it leaves."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from jobs.seed_demo import MONITORING_BATCHES
from services.core.conventions import FAILURE_TAG, MODEL_TAG, MONITORING_EXPERIMENT
from services.core.errors import DriftError
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT
from services.governance.config import DriftThresholds
from services.monitoring.drift import CATEGORICAL, NUMERIC, DriftSummary, compute_drift
from services.monitoring.runs import (
    AMBER,
    GREEN,
    RED,
    drift_status,
    latest_monitoring_runs,
    load_summary,
    log_monitoring_run,
    monitoring_runs,
    reference_for,
    report_html,
    run_check,
)
from tests.conftest import monitoring_frame

THRESHOLDS = DriftThresholds(warning_share=0.2, alarm_share=0.3, consecutive=2)


def monitor(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real job as a subprocess against the session's server."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.monitor", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "MLFLOW_TRACKING_URI": server.url},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def all_runs_of(server: ServerProcess, model: str) -> list:
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
    if experiment is None:
        return []
    return client.search_runs(
        [experiment.experiment_id],
        f"tags.`{MODEL_TAG}` = '{model}'",
        run_view_type=ViewType.ALL,
    )


def test_calm_then_drifted_batches_turn_the_status_from_green_to_red(
    mlflow_server: ServerProcess, gateway: TrackingGateway, monitored_model: str, tmp_path: Path
) -> None:
    monitoring_frame(300, seed=5).to_parquet(tmp_path / "calm.parquet", index=False)
    calm = monitor(
        mlflow_server,
        *("--model", monitored_model, "--data", str(tmp_path / "calm.parquet")),
        *("--target", "target", "--window-start", "2026-11-01T00:00:00Z"),
    )
    assert calm.returncode == 0, calm.stderr
    assert "drift share 0.00" in calm.stdout
    assert drift_status(monitoring_runs(gateway, monitored_model), THRESHOLDS).level == GREEN

    for day, seed in (("2026-11-02", 6), ("2026-11-03", 7)):
        path = tmp_path / f"drifted-{day}.csv"
        monitoring_frame(300, seed=seed, shift=1.0).to_csv(path, index=False)
        result = monitor(
            mlflow_server,
            *("--model", monitored_model, "--data", str(path), "--target", "target"),
            *("--window-start", day, "--window-end", f"{day}T23:59:59+00:00"),
        )
        assert result.returncode == 0, result.stderr
        assert "drift share 0.60" in result.stdout

    runs = monitoring_runs(gateway, monitored_model)
    assert [r.window_start.day for r in runs] == [1, 2, 3]
    assert [r.drifted_columns for r in runs] == [0, 3, 3]
    assert runs[-1].dataset_drift
    assert runs[-1].scores["alcohol"] < 0.05 < runs[0].scores["alcohol"]
    assert set(runs[0].scores) == {"alcohol", "acidity", "size", "site", "target"}
    assert all(r.version == 1 and r.alias == "champion" for r in runs)
    status = drift_status(runs, THRESHOLDS)
    assert status.level == RED
    assert status.reason == "drift share ≥ 0.3 in the last 2 batches (0.60, 0.60)"


def test_runs_of_one_window_read_in_the_order_they_were_logged(
    mlflow_server: ServerProcess, gateway: TrackingGateway, monitored_model: str, tmp_path: Path
) -> None:
    """Batch files dropped on one day share a window: the one monitored last is the latest, so
    a calm batch after two drifted ones clears the alarm (not a tie broken by run id)."""
    for index, shift in enumerate((1.0, 1.0, 0.0, 0.0)):
        path = tmp_path / f"batch-{index}.parquet"
        monitoring_frame(300, seed=20 + index, shift=shift).to_parquet(path, index=False)
        result = monitor(
            mlflow_server,
            *("--model", monitored_model, "--data", str(path), "--target", "target"),
            *("--window-start", "2026-11-05T00:00:00Z", "--window-end", "2026-11-06T00:00:00Z"),
        )
        assert result.returncode == 0, result.stderr

    logged = sorted(all_runs_of(mlflow_server, monitored_model), key=lambda r: r.info.start_time)
    runs = monitoring_runs(gateway, monitored_model)
    assert [r.run_id for r in runs] == [r.info.run_id for r in logged]
    assert drift_status(runs, THRESHOLDS).level == GREEN
    assert drift_status(runs[:2], THRESHOLDS).level == RED


def test_a_monitoring_run_holds_a_typed_summary_the_snapshot_and_the_report(
    mlflow_server: ServerProcess, gateway: TrackingGateway, monitored_model: str, tmp_path: Path
) -> None:
    monitoring_frame(250, seed=8, shift=1.0).to_parquet(tmp_path / "b.parquet", index=False)
    result = monitor(
        mlflow_server,
        *("--model", monitored_model, "--data", str(tmp_path / "b.parquet"), "--target", "target"),
    )
    assert result.returncode == 0, result.stderr
    (run,) = monitoring_runs(gateway, monitored_model)
    assert run.run_id in result.stdout

    summary = load_summary(gateway, run.run_id)
    assert isinstance(summary, DriftSummary)
    assert summary.current_rows == 250 and summary.reference_rows == 400
    assert summary.drift_share == pytest.approx(run.drift_share)
    by_column = {f.column: f for f in summary.features}
    assert by_column["alcohol"].kind == NUMERIC and by_column["alcohol"].drifted
    assert by_column["site"].kind == CATEGORICAL and by_column["site"].drifted
    assert not by_column["size"].drifted
    assert by_column["alcohol"].score == pytest.approx(run.scores["alcohol"])
    assert len(by_column["alcohol"].histogram.edges) == 21
    assert b"<html" in report_html(gateway, run.run_id)[:2000].lower()

    client = MlflowClient(mlflow_server.url)
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.tags["flightdeck.window_end"].endswith("Z")
    assert {"drift_share", "drifted_columns", "dataset_drift"} <= set(stored.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.run_id, "drift")}
    assert artifacts == {"drift/summary.json", "drift/snapshot.json", "drift/report.html"}


def test_schema_mismatch_exits_2_naming_the_columns_and_leaves_no_finished_run(
    mlflow_server: ServerProcess, monitored_model: str, tmp_path: Path
) -> None:
    batch = monitoring_frame(100, seed=2).drop(columns=["size"]).assign(colour="red")
    batch["seen_at"] = "2026-11-02T10:00:00Z"
    batch.to_csv(tmp_path / "odd.csv", index=False)
    result = monitor(mlflow_server, "--model", monitored_model, "--data", str(tmp_path / "odd.csv"))
    assert result.returncode == 2
    assert "'size'" in result.stderr and "'colour'" in result.stderr
    assert "'seen_at'" in result.stderr
    runs = all_runs_of(mlflow_server, monitored_model)
    assert all(r.info.status == "FAILED" and FAILURE_TAG in r.data.tags for r in runs)


def test_a_run_that_fails_half_way_is_marked_failed_with_the_reason(
    mlflow_server: ServerProcess, gateway: TrackingGateway, monitored_model: str
) -> None:
    version, reference = reference_for(gateway, monitored_model, "champion")
    good = compute_drift(reference, monitoring_frame(100, seed=2))
    broken = type(good)(
        summary=type(good.summary)(
            features=good.summary.features,
            drift_share="not a number",  # type: ignore[arg-type]
            drifted_columns=0,
            dataset_drift=False,
            reference_rows=1,
            current_rows=1,
        ),
        snapshot_json=good.snapshot_json,
        html=good.html,
    )
    with pytest.raises(ValueError):
        log_monitoring_run(
            gateway,
            model=monitored_model,
            version=version,
            alias="champion",
            window_start=datetime(2026, 11, 1, tzinfo=UTC),
            window_end=datetime(2026, 11, 2, tzinfo=UTC),
            result=broken,
        )
    (run,) = all_runs_of(mlflow_server, monitored_model)
    assert run.info.status == "FAILED"
    assert "not a number" in run.data.tags[FAILURE_TAG]
    assert monitoring_runs(gateway, monitored_model) == []


def test_an_empty_file_exits_2(
    mlflow_server: ServerProcess, monitored_model: str, tmp_path: Path
) -> None:
    (tmp_path / "empty.csv").write_text("alcohol,acidity,size,site,target\n")
    result = monitor(
        mlflow_server, "--model", monitored_model, "--data", str(tmp_path / "empty.csv")
    )
    assert result.returncode == 2
    assert "empty" in result.stderr
    assert all_runs_of(mlflow_server, monitored_model) == []


def test_missing_reference_sample_or_model_exits_2(
    mlflow_server: ServerProcess, gateway: TrackingGateway, unique_name: str, tmp_path: Path
) -> None:
    client = MlflowClient(mlflow_server.url)
    experiment_id = client.create_experiment(unique_name)
    run = client.create_run(experiment_id)
    client.set_terminated(run.info.run_id, "FINISHED")
    client.create_registered_model(unique_name)
    client.create_model_version(unique_name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(unique_name, "champion", "1")
    monitoring_frame(50, seed=1).to_csv(tmp_path / "b.csv", index=False)

    result = monitor(mlflow_server, "--model", unique_name, "--data", str(tmp_path / "b.csv"))
    assert result.returncode == 2
    assert "no reference sample" in result.stderr
    assert "reference/reference.parquet" in result.stderr

    batch = str(tmp_path / "b.csv")
    unknown = monitor(mlflow_server, "--model", "no-such-model-x", "--data", batch)
    assert unknown.returncode == 2
    assert "no registered model" in unknown.stderr

    no_alias = monitor(
        mlflow_server, "--model", unique_name, "--alias", "challenger", "--data", str(tmp_path)
    )
    assert no_alias.returncode == 2
    assert "@challenger" in no_alias.stderr
    with pytest.raises(DriftError, match="no reference sample"):
        run_check(gateway, model=unique_name, alias="champion", current=monitoring_frame(5, 1))


def test_a_folder_of_three_batches_makes_three_runs_in_name_order(
    mlflow_server: ServerProcess, gateway: TrackingGateway, monitored_model: str, tmp_path: Path
) -> None:
    folder = tmp_path / "batches"
    folder.mkdir()
    for index in range(3):
        frame = monitoring_frame(120, seed=20 + index)
        frame.to_parquet(folder / f"2026-11-0{index + 1}.parquet", index=False)
        os.utime(folder / f"2026-11-0{index + 1}.parquet", (0, 86_400 * (20_000 + index)))
    (folder / "notes.txt").write_text("not a batch")
    result = monitor(mlflow_server, "--model", monitored_model, "--data", str(folder))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "2026-11-01.parquet",
        "2026-11-02.parquet",
        "2026-11-03.parquet",
    ]
    runs = monitoring_runs(gateway, monitored_model)
    assert len(runs) == 3
    # Each file's window is the UTC day it was last modified.
    assert [r.window_start for r in runs] == [
        datetime.fromtimestamp(86_400 * (20_000 + index), UTC) for index in range(3)
    ]
    assert all((r.window_end - r.window_start).days == 1 for r in runs)


def test_sql_input_through_a_sqlalchemy_url(
    mlflow_server: ServerProcess, gateway: TrackingGateway, monitored_model: str, tmp_path: Path
) -> None:
    database = tmp_path / "scored.db"
    with sqlite3.connect(database) as connection:
        monitoring_frame(200, seed=9, shift=1.0).assign(day="2026-11-02").to_sql(
            "scored", connection, index=False
        )
    result = monitor(
        mlflow_server,
        *("--model", monitored_model, "--target", "target"),
        "--sql",
        "select alcohol, acidity, size, site, target from scored where day = '2026-11-02'",
        *("--sql-url", f"sqlite:///{database}"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("query: run ")
    (run,) = monitoring_runs(gateway, monitored_model)
    assert run.drifted_columns == 3

    failing = monitor(
        mlflow_server,
        *("--model", monitored_model, "--sql", "select * from nowhere"),
        *("--sql-url", f"sqlite:///{database}"),
    )
    assert failing.returncode == 2
    assert "no such table" in failing.stderr


def test_run_check_compares_without_logging(
    mlflow_server: ServerProcess, gateway: TrackingGateway, monitored_model: str
) -> None:
    version, result = run_check(
        gateway,
        model=monitored_model,
        alias="champion",
        current=monitoring_frame(150, seed=4, shift=1.0),
    )
    assert version == 1
    assert result.summary.drifted_columns >= 2
    assert all_runs_of(mlflow_server, monitored_model) == []


def test_no_monitoring_experiment_means_no_runs(gateway: TrackingGateway) -> None:
    assert monitoring_runs(gateway, "never-monitored-model") == []


def test_seeded_demo_has_a_month_of_batches_ending_in_drift(
    seeded_server: ServerProcess, settings_for
) -> None:  # type: ignore[no-untyped-def]
    gateway = TrackingGateway(settings_for(seeded_server.url))
    runs = monitoring_runs(gateway, "wine-classifier")
    assert len(runs) >= MONITORING_BATCHES >= 30
    assert drift_status(runs, THRESHOLDS).level in {RED, AMBER}
    assert len({r.version for r in runs}) >= 2
    assert runs[-1].version == gateway.alias_holder("wine-classifier", "champion")
    assert "site" in runs[-1].scores
    summary = load_summary(gateway, runs[-1].run_id)
    assert any(f.column == "site" and f.drifted for f in summary.features)
    assert b"<html" in report_html(gateway, runs[0].run_id)[:2000].lower()


def test_the_latest_runs_of_each_model_whatever_the_history_or_the_mix(
    seeded_server: ServerProcess, settings_for
) -> None:  # type: ignore[no-untyped-def]
    gateway = TrackingGateway(settings_for(seeded_server.url))
    models = ("wine-classifier", "breast-cancer-classifier", "diabetes-regressor")
    newest = {m: [r.run_id for r in monitoring_runs(gateway, m)[-5:]] for m in models}

    every = latest_monitoring_runs(gateway, [*models, "never-monitored"], per_model=5)
    assert {m: [r.run_id for r in runs] for m, runs in every.items()} == newest

    # The fleet-sized newest-first read (10 runs) holds the other models' batches too, so it
    # leaves the wine model short: the per-model read completes it.
    one = latest_monitoring_runs(gateway, ["wine-classifier", "never-monitored"], per_model=5)
    assert [r.run_id for r in one["wine-classifier"]] == newest["wine-classifier"]
    assert "never-monitored" not in one
