"""``python -m jobs.train``: real training logged to a real server, a new version, lineage tags.

Each test's job logs into its own experiment (``--experiment``) and registers into its own model
(``--register-as``), so the demo keeps its run counts and its four versions per model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from services.core.conventions import CHALLENGER, CHAMPION
from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT


def run_train(tracking_uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real job as the local runner would: a subprocess from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.train", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_training_run_registers_a_new_version_with_lineage_and_leaves_aliases(
    seeded_server: ServerProcess, unique_name: str
) -> None:
    client = MlflowClient(seeded_server.url)
    result = run_train(
        seeded_server.url,
        "--model",
        "wine-classifier",
        "--register-as",
        unique_name,
        "--experiment",
        unique_name,
        "--trigger",
        "drift",
        "--job-id",
        "job-42",
        "--requested-by",
        "carol",
        "--cause-run-id",
        "abc123",
        "--policy",
        "nightly-drift",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.fullmatch(
        rf"Registered {re.escape(unique_name)} version 1 from run (\w+) \(eval_f1 0\.\d+\)\.",
        last_line(result.stdout),
    )
    assert match, result.stdout
    run_id = match.group(1)
    lineage = {
        "flightdeck.trigger": "drift",
        "flightdeck.job_id": "job-42",
        "flightdeck.requested_by": "carol",
        "flightdeck.cause_run_id": "abc123",
        "flightdeck.policy": "nightly-drift",
    }

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert lineage.items() <= run.data.tags.items()
    assert client.get_experiment(run.info.experiment_id).name == unique_name
    assert {"eval_f1", "eval_accuracy", "train_loss", "val_accuracy"} <= run.data.metrics.keys()
    assert len(client.get_metric_history(run_id, "train_loss")) > 1
    assert run.inputs.dataset_inputs, "mlflow.log_input dataset missing"
    artifacts = [a.path for a in client.list_artifacts(run_id, "reference")]
    assert artifacts == ["reference/reference.parquet"]

    version = client.get_model_version(unique_name, "1")
    assert version.run_id == run_id
    assert lineage.items() <= version.tags.items()
    assert client.get_registered_model(unique_name).aliases == {}

    demo = client.get_registered_model("wine-classifier")
    assert demo.aliases == {CHAMPION: "3", CHALLENGER: "4"}
    assert len(client.search_model_versions("name = 'wine-classifier'")) == 4


def test_reference_sample_has_the_demo_columns_including_site(
    seeded_server: ServerProcess, unique_name: str, tmp_path: Path
) -> None:
    import pandas as pd

    client = MlflowClient(seeded_server.url)
    result = run_train(
        seeded_server.url,
        "--model",
        "diabetes-regressor",
        "--register-as",
        unique_name,
        "--experiment",
        unique_name,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\(eval_rmse \d+\.\d+\)\.$", last_line(result.stdout))
    new = client.get_model_version(unique_name, "1")
    assert new.tags["flightdeck.trigger"] == "manual"
    assert new.tags["flightdeck.job_id"].startswith("cli-")
    seeded = client.get_model_version("diabetes-regressor", "1")
    frames = []
    for version in (new, seeded):
        folder = tmp_path / version.name / version.version
        folder.mkdir(parents=True)
        path = client.download_artifacts(version.run_id, "reference/reference.parquet", folder)
        frames.append(pd.read_parquet(path))
    assert list(frames[0].columns) == list(frames[1].columns)
    assert "site" in frames[0].columns


def test_unknown_model_exits_2_naming_the_choices(mlflow_server: ServerProcess) -> None:
    result = run_train(mlflow_server.url, "--model", "no-such-model")
    assert result.returncode == 2
    assert last_line(result.stderr) == (
        "Error: No demo model named 'no-such-model', and no registered model of that name with "
        "a flightdeck.training_project tag: choose one of wine-classifier, "
        "breast-cancer-classifier, diabetes-regressor."
    )


def test_unreachable_tracking_server_fails_with_the_reason() -> None:
    result = run_train("http://127.0.0.1:9", "--model", "wine-classifier")
    assert result.returncode == 1
    line = last_line(result.stderr)
    assert line.startswith("Error: MLflow at http://127.0.0.1:9 could not be reached")
    assert "Connection refused" in line or "Failed to establish" in line


def test_failure_after_the_run_started_ends_it_failed_with_the_reason(
    seeded_server: ServerProcess, unique_name: str
) -> None:
    client = MlflowClient(seeded_server.url)
    result = run_train(
        seeded_server.url,
        "--model",
        "wine-classifier",
        "--register-as",
        "not/a-model-name",  # MLflow refuses '/' in model names, after training and logging
        "--experiment",
        unique_name,
    )
    assert result.returncode == 1
    line = last_line(result.stderr)
    assert line.startswith("Error: Training run ") and "cannot contain '/'" in line
    [run] = client.search_runs([client.get_experiment_by_name(unique_name).experiment_id])
    assert run.info.status == "FAILED"
    assert "cannot contain '/'" in run.data.tags["flightdeck.failure"]


def test_current_rows_join_the_training_rows_only(
    mlflow_server: ServerProcess, unique_name: str, tmp_path: Path
) -> None:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    current = data.data.assign(target=data.target, site="north").head(40)
    (tmp_path / "batches").mkdir()
    current.head(25).to_parquet(tmp_path / "batches" / "day1.parquet")
    current.tail(15).to_csv(tmp_path / "batches" / "day2.csv", index=False)

    result = run_train(
        mlflow_server.url,
        *("--model", "diabetes-regressor", "--register-as", unique_name),
        *("--experiment", unique_name, "--current", str(tmp_path / "batches")),
    )

    assert result.returncode == 0, result.stderr
    assert "Added 40 labelled current rows to the training rows." in result.stdout
    assert "331 training and 111 held-out rows" in result.stdout  # held-out rows unchanged
    run_id = re.search(r"from run ([0-9a-f]{32})", result.stdout).group(1)  # type: ignore[union-attr]
    assert MlflowClient(mlflow_server.url).get_run(run_id).data.params["current_rows"] == "40"


def test_current_rows_without_the_label_exit_2_naming_it(
    mlflow_server: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "unlabelled.csv"
    path.write_text("age,sex\n0.1,0.2\n")
    result = run_train(mlflow_server.url, "--model", "diabetes-regressor", "--current", str(path))
    assert result.returncode == 2
    line = last_line(result.stderr)
    assert line.startswith(f"Error: --current: {path} lacks the column(s) bmi, bp,")
    assert line.endswith("the label `target`.")
