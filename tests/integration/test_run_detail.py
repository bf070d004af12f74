"""The Run page through Streamlit's AppTest, against the real seeded server."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Param
from streamlit.testing.v1 import AppTest

from jobs.seed_demo import PROJECTS
from services.core.formatting import escape_markdown
from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT
from services.experiments.artifacts import human_size
from tests.hostile import shown

APP = str(PROJECT_ROOT / "app.py")
HTML_TAG = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://evil.example","click")'
SIX_MB = 6 * 1024 * 1024


def open_run(run_id: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/run.py")
    if run_id is not None:
        at.query_params["run_id"] = run_id
    at.run()
    return at


def texts(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "error", "warning", "title")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


def table_with(at: AppTest, column: str):  # type: ignore[no-untyped-def]
    """The first dataframe on the page that has ``column``."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def preview_file(at: AppTest, run_id: str, path: str) -> AppTest:
    at.selectbox(key=f"run.artifact.{run_id}").select(path).run()
    assert not at.exception
    return at


def page_links(at: AppTest) -> list[tuple[str, str, str]]:
    """Each page link as (url path, label, query string)."""
    return [
        (link.proto.page, link.proto.label, link.proto.query_string) for link in at.get("page_link")
    ]


def no_html_rendered(at: AppTest) -> bool:
    return not any(m.proto.allow_html for m in at.markdown)


@pytest.fixture(autouse=True)
def seeded_env(monkeypatch: pytest.MonkeyPatch, seeded_server: ServerProcess) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", seeded_server.url)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)


@pytest.fixture
def client(seeded_server: ServerProcess) -> MlflowClient:
    return MlflowClient(seeded_server.url)


@pytest.fixture
def odd_run(client: MlflowClient, unique_name: str, tmp_path: Path) -> str:
    """A FAILED run with 500 params, NaN and inf metrics, hostile tags and mixed artifacts."""
    experiment_id = client.create_experiment(unique_name)
    run_id = client.create_run(experiment_id, run_name=f"<b>odd</b> **{unique_name}**").info.run_id
    params = [Param(f"param_{i:03}", f"value {i}") for i in range(500)]
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start : start + 100])
    client.log_metric(run_id, "nan_metric", math.nan)
    client.log_metric(run_id, "inf_metric", math.inf)
    for step, value in enumerate([0.9, 0.4, 0.6]):
        client.log_metric(run_id, "loss", value, step=step)
    client.set_tag(run_id, "html", HTML_TAG)
    client.set_tag(run_id, "markdown", "**x**")
    client.set_tag(run_id, "formula", FORMULA)
    files = tmp_path / "files"
    files.mkdir()
    (files / "notes.txt").write_text(f"hello from the run {HTML_TAG}\n")
    (files / "config.json").write_text(json.dumps({"learning_rate": 0.1, "layers": [64, 32]}))
    (files / "table.csv").write_text("city,score\nOslo,1\nLima,2\n")
    (files / "big.bin").write_bytes(b"\x01" * SIX_MB)
    client.log_artifacts(run_id, str(files), "files")
    client.set_terminated(run_id, "FAILED")
    return run_id


def test_seeded_run_shows_metric_ranges_dataset_version_and_artifacts(
    client: MlflowClient,
) -> None:
    version = client.search_model_versions(f"name = '{PROJECTS[0].model}'")[0]
    run = client.get_run(version.run_id)
    histories = {key: client.get_metric_history(run.info.run_id, key) for key in run.data.metrics}
    longest = max(histories, key=lambda key: len(histories[key]))
    at = open_run(version.run_id)
    assert not at.exception
    assert not at.error
    assert no_html_rendered(at)
    assert at.title[0].value == escape_markdown(run.info.run_name)

    metrics = table_with(at, "Min").set_index("Metric")
    assert set(metrics.index) == set(run.data.metrics)
    values = [m.value for m in histories[longest]]
    assert metrics.loc[longest, "Min"] == min(values)
    assert metrics.loc[longest, "Max"] == max(values)
    assert metrics.loc[longest, "Points"] == len(values)

    dataset = run.inputs.dataset_inputs[0].dataset
    assert table_with(at, "Dataset")["Dataset"].tolist() == [dataset.name]

    versions = table_with(at, "Version")
    assert (version.name, int(version.version)) in set(
        zip(versions["Model"], versions["Version"], strict=True)
    )

    reference = client.list_artifacts(version.run_id, "reference")[0]
    tree = table_with(at, "Bytes").set_index("Path")
    assert tree.loc["reference/reference.parquet", "Size"] == human_size(reference.file_size)
    assert tree.loc["reference/reference.parquet", "Bytes"] == reference.file_size

    preview_file(at, version.run_id, "reference/reference.parquet")
    assert "rows ×" in texts(at)
    assert len(at.dataframe[-1].value) > 0
    assert len(at.get("download_button")) == 1


def test_sweep_parent_lists_its_children_and_a_child_links_to_its_parent(
    client: MlflowClient,
) -> None:
    experiment = client.get_experiment_by_name(PROJECTS[0].experiment)
    parent = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'gbm-sweep'")[0]
    at = open_run(parent.info.run_id)
    assert not at.exception
    children = table_with(at, "Run ID")
    assert len(children) == 18
    assert "Child runs (18)" in [h.value for h in at.subheader]

    child = open_run(children["Run ID"].iloc[0])
    assert not child.exception
    parent_link = ("run", "Parent run: gbm\\-sweep", f"run_id={parent.info.run_id}")
    assert parent_link in page_links(child)
    back_link = (
        "runs",
        "Runs of wine\\-classification",
        f"experiment_ids={experiment.experiment_id}",
    )
    assert back_link in page_links(child)


def test_hostile_failed_run_renders_everything_as_plain_text(odd_run: str) -> None:
    at = open_run(odd_run)
    assert not at.exception
    assert not at.error
    assert no_html_rendered(at)
    badges = [m.value for m in at.markdown if "-badge[" in m.value]
    assert badges and ":red-badge[" in badges[0] and "FAILED" in badges[0]
    assert HTML_TAG not in texts(at)  # markdown only ever gets escaped text
    assert at.title[0].value.startswith(escape_markdown("<b>odd</b>"))

    params = table_with(at, "Param")
    assert len(params) == 500
    assert params["Param"].tolist() == [f"param_{i:03}" for i in range(500)]

    tags = table_with(at, "Tag").set_index("Tag")["Value"]
    assert tags["html"] == HTML_TAG
    assert tags["markdown"] == "**x**"
    assert tags["formula"] == FORMULA

    metrics = table_with(at, "Min").set_index("Metric")
    assert math.isnan(metrics.loc["nan_metric", "Last"])
    # The SQL store saves inf as the largest float: the page shows what MLflow reports.
    assert metrics.loc["inf_metric", "Max"] == metrics.loc["inf_metric", "Last"] > 1e300
    assert (metrics.loc["loss", "Min"], metrics.loc["loss", "Max"]) == (0.4, 0.9)

    preview_file(at, odd_run, "files/notes.txt")
    assert f"hello from the run {HTML_TAG}" in at.code[0].value
    assert no_html_rendered(at)

    preview_file(at, odd_run, "files/config.json")
    assert json.loads(at.json[0].value) == {"learning_rate": 0.1, "layers": [64, 32]}

    preview_file(at, odd_run, "files/table.csv")
    assert table_with(at, "city")["city"].tolist() == ["Oslo", "Lima"]

    preview_file(at, odd_run, "files/big.bin")
    assert "over the 5.0 MB preview limit" in texts(at)
    assert not at.code and not at.json
    assert not any("city" in df.value.columns for df in at.dataframe)
    downloads = at.get("download_button")
    assert len(downloads) == 1
    assert "big.bin (6.0 MB)" in shown(downloads[0].proto.label)


def test_deleted_running_run_shows_a_warning_and_still_renders(
    client: MlflowClient, unique_name: str
) -> None:
    experiment_id = client.create_experiment(unique_name)
    run_id = client.create_run(experiment_id, run_name="still-going").info.run_id
    client.delete_run(run_id)
    at = open_run(run_id)
    assert not at.exception
    assert "This run is deleted" in at.main.warning[0].value
    assert "so far" in texts(at)
    assert "This run logged no metrics." in texts(at)
    assert "This run has no artifacts." in texts(at)


def test_unknown_run_id_is_not_found_with_a_way_back_to_runs() -> None:
    unknown = "0" * 32
    at = open_run(unknown)
    assert not at.exception
    assert f"Run {unknown} was not found" in at.error[0].value
    assert any("runs" in page for page, _, _ in page_links(at))


def test_malformed_run_id_is_not_found_too() -> None:
    at = open_run("../etc/passwd")
    assert not at.exception
    assert "was not found" in at.error[0].value


def test_missing_run_id_points_to_the_runs_page() -> None:
    at = open_run(None)
    assert not at.exception
    assert "No run chosen" in at.info[0].value
    assert any("runs" in page for page, _, _ in page_links(at))
