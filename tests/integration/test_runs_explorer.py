"""The runs explorer's searches against a real MLflow server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from services.core import errors
from services.core.exports import csv_export
from services.core.gateway import TrackingGateway
from services.core.links import RunsView
from services.core.processes import ServerProcess
from services.core.settings import Settings
from services.experiments.runs import (
    RunLoader,
    build_search,
    column_catalog,
    first_page,
    group_summary,
    runs_frame,
)


@pytest.fixture
def gateway(mlflow_server: ServerProcess, settings_for: Callable[..., Settings]) -> TrackingGateway:
    return TrackingGateway(settings_for(mlflow_server.url))


def make_runs(url: str, name: str, count: int, wide: bool = False) -> str:
    """An experiment whose run i logs acc=i/count, family rf|gbm and a tag; one FAILED run."""
    client = MlflowClient(url)
    experiment_id = client.create_experiment(name)
    for i in range(count):
        run = client.create_run(
            experiment_id, start_time=1_700_000_000_000 + i * 1000, run_name=f"r{i}"
        )
        params = [Param("family", "rf" if i % 2 else "gbm"), Param("formula", "=1+1")]
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("acc", i / count, 0, 0)],
            params=params,
            tags=[RunTag("team", "a" if i < count / 2 else "b")],
        )
        if wide:
            for start in range(0, 500, 100):
                client.log_batch(
                    run.info.run_id,
                    params=[Param(f"p{j:03d}", str(j)) for j in range(start, start + 100)],
                )
        client.set_terminated(run.info.run_id, "FAILED" if i == 0 else "FINISHED")
    return experiment_id


def test_filter_uses_mlflows_syntax(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    experiment_id = make_runs(mlflow_server.url, unique_name, 10)
    search = build_search(
        RunsView(
            experiment_ids=(experiment_id,), filter="metrics.acc >= 0.5 and params.family = 'rf'"
        )
    )
    runs, more = first_page(search, gateway.search_runs, 200)
    assert sorted(r.name for r in runs) == ["r5", "r7", "r9"]
    assert not more


def test_or_runs_each_branch_and_merges_without_duplicates(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    experiment_id = make_runs(mlflow_server.url, unique_name, 10)
    search = build_search(
        RunsView(
            experiment_ids=(experiment_id,),
            filter="metrics.acc >= 0.8 or params.family = 'gbm'",
            sort="metrics.acc",
        )
    )
    assert len(search.filters) == 2
    runs, _ = first_page(search, gateway.search_runs, 200)
    names = [r.name for r in runs]
    assert sorted(names) == sorted(["r0", "r2", "r4", "r6", "r8", "r9"])  # r8 matches both
    assert len(names) == len(set(names))
    assert names[0] == "r9"  # descending by acc across branches


def test_quick_filters_status_tag_and_parents(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    experiment_id = make_runs(mlflow_server.url, unique_name, 6)
    failed, _ = first_page(
        build_search(RunsView(experiment_ids=(experiment_id,), statuses=("FAILED",))),
        gateway.search_runs,
        50,
    )
    assert [r.name for r in failed] == ["r0"]
    tagged, _ = first_page(
        build_search(RunsView(experiment_ids=(experiment_id,), tag="team=b", parents_only=True)),
        gateway.search_runs,
        50,
    )
    assert sorted(r.name for r in tagged) == ["r3", "r4", "r5"]


def test_invalid_filter_gives_mlflows_reason(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    experiment_id = make_runs(mlflow_server.url, unique_name, 1)
    search = build_search(RunsView(experiment_ids=(experiment_id,), filter="metrics.acc ~ 1"))
    with pytest.raises(errors.InvalidRequest):
        first_page(search, gateway.search_runs, 10)


def test_cross_experiment_first_page_and_load_all_past_one_server_page(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    big = make_runs(mlflow_server.url, unique_name + "-big", 1050)
    small = make_runs(mlflow_server.url, unique_name + "-small", 3)
    search = build_search(RunsView(experiment_ids=(big, small)))
    runs, more = first_page(search, gateway.search_runs, 200)
    assert len(runs) == 200 and more
    loader = RunLoader(search, gateway.search_runs).start()
    loader._thread.join(timeout=120)  # type: ignore[union-attr]
    assert loader.done and loader.error is None
    assert len(loader.runs) == 1053
    assert len({r.run_id for r in loader.runs}) == 1053


def test_grouping_by_a_param_summarises_metrics(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    experiment_id = make_runs(mlflow_server.url, unique_name, 10)
    runs, _ = first_page(
        build_search(RunsView(experiment_ids=(experiment_id,))), gateway.search_runs, 200
    )
    summary = group_summary(runs, "params.family", ["metrics.acc"]).set_index("params.family")
    assert summary.loc["rf", "Runs"] == 5
    assert summary.loc["rf", "metrics.acc (min)"] == pytest.approx(0.1)
    assert summary.loc["gbm", "metrics.acc (max)"] == pytest.approx(0.8)


def test_a_run_with_500_params_is_listed_with_every_param_available(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    experiment_id = make_runs(mlflow_server.url, unique_name, 1, wide=True)
    runs, _ = first_page(
        build_search(RunsView(experiment_ids=(experiment_id,))), gateway.search_runs, 10
    )
    catalog = column_catalog(runs)
    assert len([c for c in catalog.params if c.startswith("params.p")]) == 500


def test_csv_export_of_real_runs_neutralises_formula_params(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    experiment_id = make_runs(mlflow_server.url, unique_name, 2)
    runs, _ = first_page(
        build_search(RunsView(experiment_ids=(experiment_id,))), gateway.search_runs, 10
    )
    exported = csv_export(runs_frame(runs, ["params.formula", "metrics.acc"], {})).decode()
    assert "'=1+1" in exported
    assert ",=1+1" not in exported
