"""The control loop keeps Flightdeck true with no browser open: real MLflow, real processes.

Each test runs ``python -m jobs.scheduler`` as a process on a store of its own, against the
session's MLflow server.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import pytest
import requests
import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.entities import Metric

from services.control_loop.leadership import FileLock
from services.control_loop.passes import (
    PassReport,
    StepReport,
    loop_health,
    recent_passes,
    record_pass,
)
from services.core.conventions import (
    BATCH_TAG,
    MODEL_TAG,
    MONITORING_EXPERIMENT,
    WINDOW_START_TAG,
)
from services.core.gateway import HISTORY_POINTS, TrackingGateway
from services.core.processes import (
    EMBEDDED_WEBHOOK_ENV,
    ServerProcess,
    free_port,
    start_scheduler,
)
from services.core.settings import PROJECT_ROOT, load_settings
from services.core.store import Store, drift_watermarks, open_store
from services.core.wiring import build
from services.experiments.history_store import HistoryReader, HistoryStore
from services.governance import alias_history, audit, notifications, promotion
from services.governance.auth import Identity
from services.monitoring.scheduled_drift import BATCH_ACTION, open_backfills, watermark
from services.retraining import jobs
from services.retraining.base import FINISHED_STATES
from services.retraining.engines import backend_for
from tests.conftest import monitoring_frame, own_mlflow_server
from tests.integration.test_promotion import APPROVER, make_model, open_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """This module's own server: its models (odd names, red drift) stay out of the shared one."""
    yield from own_mlflow_server(tmp_path_factory)


@pytest.fixture
def loop_env(mlflow_server: ServerProcess, tmp_path: Path) -> dict[str, str]:
    """A data folder (and so a store) of the test's own; policies off, so passes only watch."""
    config = tmp_path / "flightdeck.toml"
    shipped = (PROJECT_ROOT / "flightdeck.toml").read_text(encoding="utf-8")
    config.write_text(shipped.split("[retraining.default]")[0], encoding="utf-8")
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "FLIGHTDECK_DATA_DIR": str(tmp_path / "data"),
        "FLIGHTDECK_CONFIG": str(config),
    }


@pytest.fixture
def loop_store(loop_env: dict[str, str]) -> Iterator[Store]:
    store = open_store(load_settings(loop_env).store_url)
    yield store
    store.engine.dispose()


def run_job(env: dict[str, str], module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` from the project root, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def one_pass(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_job(env, "jobs.scheduler", "--once")


def test_moves_made_outside_flightdeck_are_recorded_by_the_loop_with_no_page_open(
    client: MlflowClient, loop_env: dict[str, str], loop_store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.8, 0.85])
    assert one_pass(loop_env).returncode == 0  # first sight: v1 is champion

    client.set_registered_model_alias(unique_name, "champion", "2")
    assert one_pass(loop_env).returncode == 0
    client.set_registered_model_alias(unique_name, "champion", "1")  # and undone
    passed = one_pass(loop_env)

    assert passed.returncode == 0, passed.stderr
    moves = alias_history.alias_history(loop_store, unique_name, "alias", "champion")
    assert [(m.previous, m.version, m.external) for m in moves][-2:] == [
        (1, 2, True),
        (2, 1, True),
    ]
    passes = sorted(recent_passes(loop_store), key=lambda p: p.started_at)
    for move, watched in zip(moves[-2:], passes[:2], strict=True):  # when it may have happened
        assert f"between {watched.started_at:%Y-%m-%d %H:%M:%S} and" in move.reason
    (last, *_) = recent_passes(loop_store)
    assert [s.name for s in last.steps] == [
        "retraining",
        "external changes",
        "reconciliation",
        "scheduled drift",
        "notifications",
        "audit anchor",
        "history prefetch",
    ]
    assert not [s for s in last.steps if s.problem], last.steps
    assert not loop_health(loop_store, datetime.now(UTC)).late


def test_a_pass_keeps_the_histories_of_runs_that_ended_so_their_first_chart_asks_mlflow_nothing(
    client: MlflowClient, loop_env: dict[str, str], loop_store: Store, unique_name: str
) -> None:
    experiment_id = client.create_experiment(unique_name)
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(run_id, metrics=[Metric("loss", 1 / (s + 1), 1_000 + s, s) for s in range(50)])
    client.set_terminated(run_id)

    passed = one_pass(loop_env)

    assert passed.returncode == 0, passed.stderr
    kept = HistoryStore(loop_store).load([run_id], "loss", HISTORY_POINTS)
    assert [p.step for p in kept[run_id]] == list(range(50))
    gateway = TrackingGateway(load_settings(loop_env))
    never_asked = HistoryReader(_refuse, HistoryStore(loop_store))
    assert never_asked.histories([gateway.get_run(run_id)], "loss") == kept


def _refuse(run_ids: object, key: str, max_points: int) -> NoReturn:
    raise AssertionError(f"asked MLflow for {key} of {run_ids}")


def test_a_move_and_its_undo_within_one_interval_reach_the_history_by_webhook(
    client: MlflowClient,
    loop_env: dict[str, str],
    loop_store: Store,
    unique_name: str,
    tmp_path: Path,
) -> None:
    make_model(client, unique_name, [0.8, 0.85])
    port = free_port()
    env = {**loop_env, "FLIGHTDECK_REGISTRY_WEBHOOK_PORT": str(port)}
    loop = start_scheduler(env, tmp_path / "loop.log", 600.0)  # one pass now, the next in 10 min
    try:
        wait_for(lambda: recent_passes(loop_store), "the first pass")
        log = (tmp_path / "loop.log").read_text(encoding="utf-8")
        assert "receiving MLflow registry webhooks" in log, log
        # MLflow caches who subscribes to an event (the moves in make_model filled it).
        time.sleep(int(EMBEDDED_WEBHOOK_ENV["MLFLOW_WEBHOOK_CACHE_TTL"]) + 1)

        forged = requests.post(
            f"http://127.0.0.1:{port}/mlflow-webhook",
            data=b'{"entity": "model_version_alias", "action": "created", "data": {}}',
            headers={
                "X-MLflow-Delivery-Id": "d1",
                "X-MLflow-Timestamp": str(int(time.time())),
                "X-MLflow-Signature": "v1,Zm9yZ2Vk",
            },
            timeout=10,
        )
        assert forged.status_code == 401

        client.set_registered_model_alias(unique_name, "champion", "2")
        client.set_registered_model_alias(unique_name, "champion", "1")  # undone at once

        def both() -> list[tuple[int | None, int | None]]:
            moves = alias_history.alias_history(loop_store, unique_name, "alias", "champion")
            return [(m.previous, m.version) for m in moves if m.external]

        wait_for(lambda: len(both()) >= 2, "both moves reported")
        assert both() == [(1, 2), (2, 1)]
        assert len(recent_passes(loop_store)) == 1  # no pass polled: the webhooks recorded them
    finally:
        loop.stop()
    moves = alias_history.alias_history(loop_store, unique_name, "alias", "champion")
    assert all("reported by MLflow" in m.reason for m in moves if m.external)


def test_a_replayed_webhook_delivery_records_nothing(
    loop_env: dict[str, str], loop_store: Store, unique_name: str
) -> None:
    services = build(load_settings(loop_env))
    with loop_store.write() as connection:
        audit.append(
            connection,
            actor="mlflow",
            action=alias_history.OBSERVED,
            subject=audit.subject_for(unique_name, "alias", "champion"),
            details={"version": 1, "previous": None},
        )
    assert alias_history.record_reported_move(services, unique_name, "champion", 2, "d-1")
    assert not alias_history.record_reported_move(services, unique_name, "champion", 2, "d-1")
    assert alias_history.record_reported_move(services, unique_name, "champion", 1, "d-2")
    assert not alias_history.record_reported_move(services, unique_name, "champion", 2, "d-1")
    moves = alias_history.alias_history(loop_store, unique_name, "alias", "champion")
    assert [(m.previous, m.version) for m in moves if m.external] == [(1, 2), (2, 1)]


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_loops_take_turns_never_together_and_the_survivor_takes_over_after_sigkill(
    loop_env: dict[str, str], loop_store: Store, tmp_path: Path
) -> None:
    interval = 1.0
    env = {**loop_env, "PYTHONUNBUFFERED": "1"}
    loops = [start_scheduler(env, tmp_path / f"loop-{i}.log", interval) for i in range(2)]
    try:
        deadline = time.monotonic() + 90
        while len(recent_passes(loop_store, 100)) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        before = recent_passes(loop_store, 100)
        assert len({p.holder for p in before}) == 1, "only the leader runs passes"
        leader_pid = int(before[0].holder.rsplit(":", 1)[1])
        (leader,) = [loop for loop in loops if loop.process.pid == leader_pid]
        (survivor,) = [loop for loop in loops if loop is not leader]

        os.kill(leader.process.pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            taken = [p for p in recent_passes(loop_store, 100) if p.holder != before[0].holder]
            if taken:
                break
            time.sleep(0.2)
        assert taken, "the survivor never took over"
        first_takeover = min(p.started_at for p in taken)
        assert first_takeover - killed_at <= timedelta(seconds=2 * interval + 1)
        assert taken[0].holder.endswith(f":{survivor.process.pid}")
    finally:
        for loop in loops:
            loop.stop()
    every = sorted(recent_passes(loop_store, 500), key=lambda p: p.started_at)
    for earlier, later in itertools.pairwise(every):
        assert earlier.finished_at <= later.started_at, "two passes overlapped"


def test_a_second_single_pass_does_nothing_while_another_loop_leads(
    loop_env: dict[str, str], loop_store: Store
) -> None:
    settings = load_settings(loop_env)
    lock = FileLock(Path(f"{settings.store_url.removeprefix('sqlite:///')}.control-loop.lock"))
    assert lock.try_acquire()
    try:
        refused = one_pass(loop_env)
    finally:
        lock.release()
    assert refused.returncode == 1
    assert "another control loop holds the lock" in refused.stderr
    assert recent_passes(loop_store) == []


def test_health_turns_late_after_three_missed_intervals(loop_store: Store) -> None:
    assert loop_health(loop_store, datetime.now(UTC)).late  # never ran
    start = datetime.now(UTC) - timedelta(minutes=5)
    record_pass(
        loop_store,
        PassReport("host:1", start, start + timedelta(seconds=2), 30.0, (StepReport("x", "y"),)),
    )
    assert not loop_health(loop_store, start + timedelta(seconds=60)).late
    assert loop_health(loop_store, start + timedelta(seconds=95)).late
    assert loop_health(loop_store, start + timedelta(seconds=95)).last is not None


# -- scheduled drift monitoring -------------------------------------------------------------------


def monitored_by_the_loop(loop_env: dict[str, str], model: str, folder: Path) -> dict[str, str]:
    """``loop_env`` with ``folder`` as the model's source of batches."""
    config = Path(loop_env["FLIGHTDECK_CONFIG"])
    key = json.dumps(model)
    with config.open("a", encoding="utf-8") as handle:
        handle.write(f'\n[monitoring.sources.{key}]\npath = "{folder}"\n')
    return loop_env


def drop_batches(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names, start=10):
        monitoring_frame(150, seed=seed, shift=0.5 * seed).to_parquet(folder / name, index=False)


def batch_runs(mlflow_server: ServerProcess, model: str) -> list[str]:
    """The batch names of the model's finished monitoring runs."""
    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return sorted(
        r.data.tags[BATCH_TAG]
        for r in runs
        if r.data.tags.get(MODEL_TAG) == model
        and BATCH_TAG in r.data.tags
        and r.info.status == "FINISHED"
    )


def test_each_dropped_batch_is_monitored_exactly_once_even_after_a_lost_watermark(
    mlflow_server: ServerProcess,
    monitored_model: str,
    loop_env: dict[str, str],
    loop_store: Store,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "batches"
    env = monitored_by_the_loop(loop_env, monitored_model, folder)
    drop_batches(folder, ["2026-12-01.parquet", "2026-12-02.parquet", "2026-12-03.parquet"])

    assert one_pass(env).returncode == 0
    assert one_pass(env).returncode == 0  # nothing new
    three = ["2026-12-01.parquet", "2026-12-02.parquet", "2026-12-03.parquet"]
    assert batch_runs(mlflow_server, monitored_model) == three

    with loop_store.write() as connection:  # a crash after logging, before the watermark moved
        connection.execute(drift_watermarks.delete())
    drop_batches(folder, ["2026-12-04.parquet"])
    assert one_pass(env).returncode == 0

    assert batch_runs(mlflow_server, monitored_model) == [*three, "2026-12-04.parquet"]
    assert watermark(loop_store, monitored_model)[0] == "2026-12-04.parquet"
    with loop_store.read() as connection:
        logged = audit.events(connection, actions=(BATCH_ACTION,))
    assert sorted(e.details["batch"] for e in logged) == [*three, "2026-12-04.parquet"]


def test_a_loop_killed_mid_batch_leaves_no_duplicate_and_no_gap_after_a_restart(
    mlflow_server: ServerProcess,
    monitored_model: str,
    loop_env: dict[str, str],
    loop_store: Store,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "batches"
    env = monitored_by_the_loop(loop_env, monitored_model, folder)
    names = [f"2026-11-{day:02d}.parquet" for day in range(1, 7)]
    drop_batches(folder, names)
    loop = start_scheduler(env, tmp_path / "loop.log", 1.0)
    try:
        deadline = time.monotonic() + 120
        while not batch_runs(mlflow_server, monitored_model) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(loop.process.pid, signal.SIGKILL)  # mid-way through the six batches
    finally:
        loop.stop()
    done_before = batch_runs(mlflow_server, monitored_model)
    assert 0 < len(done_before) < len(names), "killed before the first or after the last batch"

    assert one_pass(env).returncode == 0

    assert batch_runs(mlflow_server, monitored_model) == names


def test_demo_traffic_is_monitored_by_the_next_pass(
    mlflow_server: ServerProcess, monitored_model: str, loop_env: dict[str, str], tmp_path: Path
) -> None:
    env = monitored_by_the_loop(
        loop_env, monitored_model, Path("{data_dir}/traffic") / monitored_model
    )
    dropped = run_job(env, "jobs.traffic", "--model", monitored_model, "--shift", "2")
    assert dropped.returncode == 0, dropped.stderr
    batch = Path(dropped.stdout.strip())
    assert batch.parent == Path(env["FLIGHTDECK_DATA_DIR"]) / "traffic" / monitored_model

    assert one_pass(env).returncode == 0

    assert batch_runs(mlflow_server, monitored_model) == [batch.name]


def test_a_database_source_is_monitored_by_day_and_a_backfill_fills_its_history(
    mlflow_server: ServerProcess,
    monitored_model: str,
    loop_env: dict[str, str],
    loop_store: Store,
    tmp_path: Path,
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=n) for n in (3, 2, 1, 0)]
    frames = []
    for seed, day in enumerate(days, start=20):
        frame = monitoring_frame(150, seed=seed, shift=0.3)
        frame["scored_at"] = [
            (day + timedelta(minutes=9 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(150)
        ]
        frames.append(frame)
    url = f"sqlite:///{tmp_path / 'scored.db'}"
    engine = sa.create_engine(url)
    pd.concat(frames).to_sql("scored", engine, index=False)
    engine.dispose()
    config = Path(loop_env["FLIGHTDECK_CONFIG"])
    with config.open("a", encoding="utf-8") as handle:
        handle.write(
            f"\n[monitoring.sources.{json.dumps(monitored_model)}]\nurl = {json.dumps(url)}\n"
            'query = "select * from scored"\ntime_column = "scored_at"\n'
        )
    name = [day.strftime("%Y-%m-%dT%H:%M:%SZ") for day in days]

    assert one_pass(loop_env).returncode == 0  # a new source: the last closed day only
    assert batch_runs(mlflow_server, monitored_model) == [name[2]]

    range_asked = [days[0].date().isoformat(), days[2].date().isoformat()]  # up to yesterday
    asked = run_job(loop_env, "jobs.scheduler", "--backfill", monitored_model, *range_asked)
    assert asked.returncode == 0, asked.stderr
    assert one_pass(loop_env).returncode == 0
    assert one_pass(loop_env).returncode == 0  # nothing new, nothing twice
    assert batch_runs(mlflow_server, monitored_model) == name[:3]  # today is not closed yet
    assert open_backfills(loop_store) == []
    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
    assert experiment is not None
    windows = {
        r.data.tags[BATCH_TAG]: r.data.tags[WINDOW_START_TAG]
        for r in client.search_runs([experiment.experiment_id], max_results=1000)
        if r.data.tags.get(MODEL_TAG) == monitored_model
    }
    assert {n: datetime.fromisoformat(w) for n, w in windows.items()} == dict(
        zip(name[:3], days[:3], strict=True)
    )


# -- notifications --------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on loopback that answers 500 to its first ``failures`` posts."""

    def __init__(self, failures: int) -> None:
        receiver = self
        self.received: list[dict[str, Any]] = []
        self.failures = failures

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                failing = receiver.failures > 0
                receiver.failures -= 1
                if not failing:
                    receiver.received.append(body)
                self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def with_webhook(loop_env: dict[str, str], url: str) -> dict[str, str]:
    config = Path(loop_env["FLIGHTDECK_CONFIG"])
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('webhook_url = ""', f'webhook_url = "{url}"', 1), "utf-8")
    return loop_env


def test_an_outside_move_reaches_the_webhook_after_a_failed_delivery_is_retried(
    client: MlflowClient, loop_env: dict[str, str], loop_store: Store, unique_name: str
) -> None:
    receiver = Receiver(failures=1)
    try:
        env = with_webhook(loop_env, receiver.url)
        make_model(client, unique_name, [0.8, 0.85])
        assert one_pass(env).returncode == 0
        client.set_registered_model_alias(unique_name, "champion", "2")
        assert one_pass(env).returncode == 0  # recorded, posted, refused with a 500

        (row,) = [r for r in notifications.outbox(loop_store) if unique_name in r["payload"]]
        assert (row["attempts"], row["delivered_at"]) == (1, None)
        assert "500" in row["last_error"]
        later = datetime.now(UTC) + notifications.FIRST_RETRY + timedelta(seconds=1)
        assert notifications.deliver_due(loop_store, receiver.url, later) == (1, 0)
        assert notifications.deliver_due(loop_store, receiver.url, later) == (0, 0)  # once
    finally:
        receiver.close()
    (message,) = receiver.received
    assert message["flightdeck"]["event"] == "moved_outside_flightdeck"
    assert message["flightdeck"]["model"] == unique_name
    assert f"@champion of {unique_name} was moved outside Flightdeck: v1 → v2" in message["text"]


def test_a_notification_that_keeps_failing_is_given_up_with_its_error(loop_store: Store) -> None:
    receiver = Receiver(failures=1000)
    now = datetime.now(UTC)
    try:
        with loop_store.write() as connection:
            notifications.enqueue(connection, "drift_alarm_raised", "Drift alarm", {}, now)
        for attempt in range(notifications.MAX_ATTEMPTS):
            assert notifications.deliver_due(loop_store, receiver.url, now) == (0, 1), attempt
            now += notifications.LONGEST_WAIT
    finally:
        receiver.close()
    (row,) = notifications.outbox(loop_store)
    assert row["attempts"] == notifications.MAX_ATTEMPTS and row["given_up_at"] is not None
    assert notifications.deliver_due(loop_store, receiver.url, now) == (0, 0)


def test_a_webhook_receiver_gets_each_notification_kind(
    client: MlflowClient,
    monitored_model: str,
    loop_env: dict[str, str],
    loop_store: Store,
    tmp_path: Path,
) -> None:
    other = f"{monitored_model}-other"  # monitored_model is named after the test too
    receiver = Receiver(failures=0)
    try:
        folder = tmp_path / "batches"
        env = with_webhook(monitored_by_the_loop(loop_env, monitored_model, folder), receiver.url)
        settings = load_settings(env)
        services = build(settings)
        make_model(client, other, [0.8, 0.85])
        request = open_request(services, other)  # promotion steps are sent at once
        promotion.decide(services, APPROVER, request.request_id, approve=False, comment="not yet")
        backend = backend_for(settings)
        for model, code in ((monitored_model, 0), (other, 3)):
            jobs.submit_retraining(
                loop_store,
                backend,
                Identity("omar", True, "operator"),
                model=model,
                trigger="manual",
                params={},
                idempotency_key=f"notify-{model}",
                command_for=lambda _job_id, code=code: [sys.executable, "-c", f"exit({code})"],
            )
        drop_batches(folder, ["2026-10-01.parquet", "2026-10-02.parquet"])  # both drift
        for job in jobs.list_jobs(loop_store):  # the jobs' processes end
            assert job.engine_ref is not None
            ref = job.engine_ref
            wait_for(lambda ref=ref: backend.status(ref).state in FINISHED_STATES, "a job's end")

        assert one_pass(env).returncode == 0  # first sight of the aliases, jobs, the alarm
        client.set_registered_model_alias(other, "champion", "2")
        for day in ("2026-10-03.parquet", "2026-10-04.parquet"):  # calm again
            monitoring_frame(150, seed=40).to_parquet(folder / day, index=False)
        assert one_pass(env).returncode == 0
        # A post that timed out on a loaded machine is retried, as the next pass would.
        later = datetime.now(UTC) + notifications.LONGEST_WAIT
        notifications.deliver_due(loop_store, receiver.url, later)
    finally:
        receiver.close()
    told = [(m["flightdeck"]["event"], m["flightdeck"].get("model")) for m in receiver.received]
    problems = [(s.name, s.problem) for p in recent_passes(loop_store) for s in p.steps]
    why = (told, [p for p in problems if p[1]])  # what a failure needs to be understood
    assert sorted(told) == sorted(
        [
            ("requested", other),
            ("rejected", other),
            ("retrain_started", monitored_model),
            ("retrain_finished", monitored_model),
            ("retrain_started", other),
            ("retrain_failed", other),
            ("drift_alarm_raised", monitored_model),
            ("moved_outside_flightdeck", other),
            ("drift_alarm_cleared", monitored_model),
        ]
    ), why
