"""The demo data: real training logged to a real server, idempotent."""

from __future__ import annotations

import requests
from mlflow import MlflowClient
from mlflow.entities import ViewType

from jobs.training import PROJECTS, REFERENCE_ARTIFACT_DIR, REFERENCE_FILE
from services.core.conventions import CHALLENGER, CHAMPION
from services.core.processes import ServerProcess
from tests.conftest import run_seed_demo


def demo_runs(client: MlflowClient) -> list:
    ids = [client.get_experiment_by_name(p.experiment).experiment_id for p in PROJECTS]
    return client.search_runs(ids, run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)


def test_demo_has_three_experiments_and_at_least_80_runs(seeded_server: ServerProcess) -> None:
    client = MlflowClient(seeded_server.url)
    runs = demo_runs(client)
    assert len(PROJECTS) >= 3
    assert len(runs) >= 80
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.params for r in runs)


def test_sweep_children_log_histories_of_at_least_50_steps(seeded_server: ServerProcess) -> None:
    client = MlflowClient(seeded_server.url)
    children = [r for r in demo_runs(client) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) >= 18 * len(PROJECTS)
    history = client.get_metric_history(children[0].info.run_id, "train_loss")
    assert len(history) >= 50
    assert [m.step for m in history] == list(range(len(history)))


def test_every_run_logs_its_dataset_and_a_reference_sample(seeded_server: ServerProcess) -> None:
    client = MlflowClient(seeded_server.url)
    run = next(r for r in demo_runs(client) if "mlflow.parentRunId" in r.data.tags)
    assert run.inputs.dataset_inputs, "mlflow.log_input dataset missing"
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, REFERENCE_ARTIFACT_DIR)]
    assert f"{REFERENCE_ARTIFACT_DIR}/{REFERENCE_FILE}" in artifacts


def test_models_have_four_described_versions_and_both_aliases(
    seeded_server: ServerProcess,
) -> None:
    client = MlflowClient(seeded_server.url)
    for project in PROJECTS:
        model = client.get_registered_model(project.model)
        versions = client.search_model_versions(f"name = '{project.model}'")
        assert len(versions) >= 4
        assert all(v.description and v.tags for v in versions)
        assert set(model.aliases) >= {CHAMPION, CHALLENGER}
        assert model.aliases[CHAMPION] != model.aliases[CHALLENGER]


def test_seeding_again_adds_nothing(seeded_server: ServerProcess) -> None:
    client = MlflowClient(seeded_server.url)
    before = len(demo_runs(client))
    result = run_seed_demo(seeded_server.url)
    assert result.returncode == 0, result.stderr
    assert "already seeded" in result.stderr + result.stdout
    assert len(demo_runs(client)) == before
    assert requests.get(seeded_server.url + "/health", timeout=5).ok
