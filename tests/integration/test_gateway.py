"""The MLflow gateway against a real tracking server: typed records out, typed errors out."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest
from mlflow import MlflowClient

from services.core import errors
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess, free_port
from services.core.settings import Settings

BuildSettings = Callable[..., Settings]


def make_experiment(url: str, name: str, runs: int) -> str:
    client = MlflowClient(url)
    experiment_id = client.create_experiment(name, tags={"owner": "qa", "mlflow.note.content": "d"})
    for _ in range(runs):
        client.create_run(experiment_id)
    return experiment_id


def test_server_check_reports_the_real_version(gateway: TrackingGateway) -> None:
    import mlflow

    assert gateway.check_server().version == mlflow.__version__


@pytest.mark.parametrize("runs", [0, 1, 2, 37, 64])
def test_run_count_is_exact_without_downloading_the_runs(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str, runs: int
) -> None:
    experiment_id = make_experiment(mlflow_server.url, unique_name, runs)
    activity = gateway.experiment_activity(experiment_id)
    assert activity.run_count.exact
    assert activity.run_count.value == runs
    assert (activity.last_run_at is None) == (runs == 0)


def test_experiments_list_user_tags_and_description_and_hides_deleted_by_default(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    kept = make_experiment(mlflow_server.url, unique_name + "-kept", 0)
    gone = make_experiment(mlflow_server.url, unique_name + "-gone", 0)
    MlflowClient(mlflow_server.url).delete_experiment(gone)

    active = {e.experiment_id: e for e in gateway.list_experiments()}
    assert kept in active and gone not in active
    assert active[kept].tags == {"owner": "qa"}
    assert active[kept].description == "d"
    everything = {e.experiment_id: e for e in gateway.list_experiments(include_deleted=True)}
    assert everything[gone].deleted


def test_unknown_experiment_is_not_found(gateway: TrackingGateway) -> None:
    with pytest.raises(errors.NotFound):
        gateway.get_experiment("987654321")
    with pytest.raises(errors.NotFound, match="ids are numbers"):
        gateway.get_experiment("../etc")


def test_invalid_filter_gives_mlflows_reason(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    experiment_id = make_experiment(mlflow_server.url, unique_name, 1)
    with pytest.raises(errors.InvalidRequest, match="comparator"):
        gateway.search_runs([experiment_id], filter_string="metrics.acc >>> 1")


def test_unreachable_server_is_reported_quickly(settings_for: BuildSettings) -> None:
    gateway = TrackingGateway(settings_for(f"http://127.0.0.1:{free_port()}"))
    started = time.monotonic()
    with pytest.raises(
        errors.ServerUnreachable, match=r"Cannot reach MLflow at .*connection refused"
    ):
        gateway.check_server()
    with pytest.raises(errors.ServerUnreachable):
        gateway.list_experiments()
    assert time.monotonic() - started < 15


def test_silent_host_times_out_within_the_health_timeout(settings_for: BuildSettings) -> None:
    import socket

    # A socket that accepts connections but never answers, like a hung server.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        gateway = TrackingGateway(
            settings_for(f"http://127.0.0.1:{port}", FLIGHTDECK_HEALTH_TIMEOUT="2")
        )
        started = time.monotonic()
        with pytest.raises(errors.ServerUnreachable, match="no answer within the timeout"):
            gateway.check_server()
        assert time.monotonic() - started < 5


def test_a_web_server_that_is_not_mlflow_is_named_as_such(settings_for: BuildSettings) -> None:
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gateway = TrackingGateway(settings_for(f"http://127.0.0.1:{server.server_port}"))
        with pytest.raises(errors.ServerUnreachable, match="HTTP 404"):
            gateway.check_server()
    finally:
        server.shutdown()


def test_runs_by_id_reads_many_runs_at_once_including_deleted_ones(
    gateway: TrackingGateway, mlflow_server: ServerProcess, unique_name: str
) -> None:
    client = MlflowClient(mlflow_server.url)
    experiment_id = client.create_experiment(unique_name)
    ids = [client.create_run(experiment_id).info.run_id for _ in range(3)]
    client.delete_run(ids[0])
    unknown = "0" * 32
    found = gateway.runs_by_id([*ids, unknown, "not-an-id"])
    assert set(found) == set(ids)
    assert found[ids[0]].deleted and not found[ids[1]].deleted


def test_searched_runs_read_as_json_equal_the_mlflow_clients_entities(
    gateway: TrackingGateway, client: MlflowClient
) -> None:
    """The gateway reads runs/search as plain JSON: every field the client's entities carry
    must come through the same, for any value MLflow accepts."""
    import pandas as pd
    from mlflow.entities import Metric, Param, RunTag

    from services.core.entities import run_record

    experiment_id = client.create_experiment(f"json-search-{time.time_ns()}")
    odd = "ünïcode ' \" \\ <b>&amp;</b> 🚀"
    key = "a key: with/dots.and-spaces"  # keys MLflow accepts are narrower than values
    parent = client.create_run(experiment_id, run_name=odd)
    now = int(time.time() * 1000)
    client.log_batch(
        parent.info.run_id,
        metrics=[
            Metric("nan", float("nan"), now, 0),
            Metric("inf", float("inf"), now, 0),
            Metric("-inf", float("-inf"), now, 0),
            Metric("zero", 0.0, now, 0),
            Metric(key, -1e300, now, 3),
        ],
        params=[Param("empty", ""), Param(key, odd)],
        tags=[RunTag("empty", ""), RunTag(key, odd)],
    )
    frame = pd.DataFrame({"a": [1, 2], "y": [0, 1]})
    gateway.log_dataset(parent.info.run_id, frame, odd, "y", "training")
    client.set_terminated(parent.info.run_id)
    child = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent.info.run_id})
    bare = client.create_run(experiment_id, run_name="")
    client.delete_run(client.create_run(experiment_id).info.run_id)

    page = gateway.search_runs([experiment_id], max_results=10)
    expected = [
        run_record(r) for r in client.search_runs([experiment_id], order_by=["start_time DESC"])
    ]

    def comparable(run):  # type: ignore[no-untyped-def]  # NaN != NaN: compare its text
        return (run.run_id, repr(sorted(run.metrics.items())), run.params, run.tags, run)

    assert len(page.runs) == 3
    assert {r.run_id for r in page.runs} == {
        parent.info.run_id, child.info.run_id, bare.info.run_id
    }  # fmt: skip
    for got, want in zip(page.runs, expected, strict=True):
        assert comparable(got)[:4] == comparable(want)[:4]
        assert (got.name, got.status, got.start_time, got.end_time, got.user, got.datasets) == (
            want.name, want.status, want.start_time, want.end_time, want.user, want.datasets,
        )  # fmt: skip
    searched_parent = next(r for r in page.runs if r.run_id == parent.info.run_id)
    assert searched_parent.name == odd
    assert searched_parent.datasets[0].name == odd
    assert searched_parent.datasets[0].context == "training"
    assert math.isnan(searched_parent.metrics["nan"])  # stored infinities come back clamped
