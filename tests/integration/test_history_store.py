"""Metric histories fetched once, against a real MLflow server and a real store: finished runs'
kept for every process, running runs' fetched again, stale copies replaced, and concurrent
requests that still bring every point."""

from __future__ import annotations

import math
from typing import Any

import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric

from services.core.errors import FlightdeckError
from services.core.gateway import BULK_HISTORY_PATH, TrackingGateway
from services.core.processes import ServerProcess
from services.core.records import MetricPoint
from services.core.store import Store
from services.experiments.history_store import (
    RUNS_PER_REQUEST,
    HistoryReader,
    HistoryStore,
    RecentHistories,
    decode_points,
    encode_points,
)

pytestmark = pytest.mark.integration
STEPS = 40


class CountingSession(requests.Session):
    """A real HTTP session that counts its history requests."""

    def __init__(self) -> None:
        super().__init__()
        self.history_requests = 0

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if BULK_HISTORY_PATH in str(url):
            self.history_requests += 1
        return super().get(url, **kwargs)


def make_runs(client: MlflowClient, experiment: str, count: int, *, finished: bool) -> list[str]:
    experiment_id = client.create_experiment(experiment)
    run_ids = []
    for index in range(count):
        run_id = client.create_run(experiment_id, run_name=f"r{index}").info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("loss", index + s / 100, 1_000 + s, s) for s in range(STEPS)]
            + [Metric("acc", s / STEPS, 1_000 + s, s) for s in range(STEPS)],
        )
        if finished:
            client.set_terminated(run_id)
        run_ids.append(run_id)
    return run_ids


def reader_for(
    url: str, settings_for: Any, store: Store | None, ttl_s: float = 60
) -> tuple[HistoryReader, CountingSession, TrackingGateway]:
    session = CountingSession()
    gateway = TrackingGateway(settings_for(url), session=session)
    kept = HistoryStore(store) if store is not None else None
    return HistoryReader(gateway.metric_histories, kept, RecentHistories(ttl_s)), session, gateway


def test_points_survive_encoding_with_nan_and_infinities() -> None:
    points = [MetricPoint(0, 1, 0.5), MetricPoint(3, 2, math.inf), MetricPoint(7, 3, math.nan)]
    decoded = decode_points(encode_points(points))
    assert [(p.step, p.timestamp_ms) for p in decoded] == [(0, 1), (3, 2), (7, 3)]
    assert decoded[1].value == math.inf and math.isnan(decoded[2].value)


def test_a_finished_runs_history_is_fetched_once_for_every_process(
    mlflow_server: ServerProcess, settings_for: Any, unique_name: str, store: Store
) -> None:
    client = MlflowClient(mlflow_server.url)
    run_ids = make_runs(client, unique_name, 20, finished=True)
    first, first_session, gateway = reader_for(mlflow_server.url, settings_for, store)
    runs = list(gateway.runs_by_id(run_ids).values())

    arrived = dict(first.as_ready(runs, ("loss", "acc")))

    # Each metric's 20 runs went out as several requests, and every point came back.
    assert first_session.history_requests == 2 * math.ceil(20 / RUNS_PER_REQUEST) > 2
    for run_id in run_ids:
        index = [r.run_id for r in runs].index(run_id)
        loss = arrived["loss"]
        assert not isinstance(loss, FlightdeckError)
        assert [p.step for p in loss[run_id]] == list(range(STEPS))
        assert loss[run_id][-1].value == pytest.approx(runs[index].metrics["loss"])
    assert HistoryStore(store).size().histories == 40

    # Another process (a new reader on the same store) asks MLflow nothing.
    second, second_session, _ = reader_for(mlflow_server.url, settings_for, store)
    again = dict(second.as_ready(runs, ("loss", "acc")))
    assert second_session.history_requests == 0
    assert again == arrived


def test_a_running_run_is_fetched_again_and_never_kept(
    mlflow_server: ServerProcess, settings_for: Any, unique_name: str, store: Store
) -> None:
    client = MlflowClient(mlflow_server.url)
    (run_id,) = make_runs(client, unique_name, 1, finished=False)
    reader, session, gateway = reader_for(mlflow_server.url, settings_for, store, ttl_s=0)

    reader.histories(list(gateway.runs_by_id([run_id]).values()), "loss")
    client.log_metric(run_id, "loss", 99.0, step=STEPS)
    later = reader.histories(list(gateway.runs_by_id([run_id]).values()), "loss")

    assert session.history_requests == 2
    assert later[run_id][-1].value == 99.0
    assert HistoryStore(store).size().histories == 0


def test_a_kept_history_logged_to_after_it_ended_is_fetched_again(
    mlflow_server: ServerProcess, settings_for: Any, unique_name: str, store: Store
) -> None:
    client = MlflowClient(mlflow_server.url)
    (run_id,) = make_runs(client, unique_name, 1, finished=True)
    reader, session, gateway = reader_for(mlflow_server.url, settings_for, store)
    reader.histories(list(gateway.runs_by_id([run_id]).values()), "loss")

    client.log_metric(run_id, "loss", -1.0, step=STEPS)  # MLflow accepts it on a finished run
    later = reader.histories(list(gateway.runs_by_id([run_id]).values()), "loss")

    assert session.history_requests == 2
    assert later[run_id][-1].value == -1.0
    assert HistoryStore(store).load([run_id], "loss", 320)[run_id][-1].value == -1.0


def test_an_unreachable_server_gives_each_metric_its_error_and_keeps_nothing(
    mlflow_server: ServerProcess, settings_for: Any, unique_name: str, store: Store
) -> None:
    client = MlflowClient(mlflow_server.url)
    run_ids = make_runs(client, unique_name, 3, finished=True)
    runs = list(TrackingGateway(settings_for(mlflow_server.url)).runs_by_id(run_ids).values())
    dead, _, _ = reader_for("http://127.0.0.1:9", settings_for, store)

    arrived = dict(dead.as_ready(runs, ("loss", "acc")))

    assert set(arrived) == {"loss", "acc"}
    assert all(isinstance(result, FlightdeckError) for result in arrived.values())
    assert "127.0.0.1:9" in str(arrived["loss"])
    assert HistoryStore(store).size().histories == 0


def test_runs_without_the_metric_are_not_asked_for(
    mlflow_server: ServerProcess, settings_for: Any, unique_name: str, store: Store
) -> None:
    client = MlflowClient(mlflow_server.url)
    run_ids = make_runs(client, unique_name, 2, finished=True)
    reader, session, gateway = reader_for(mlflow_server.url, settings_for, store)

    arrived = reader.histories(list(gateway.runs_by_id(run_ids).values()), "never-logged")

    assert arrived == {run_id: [] for run_id in run_ids}
    assert session.history_requests == 0
