"""The ``airflow`` engine against a real ``airflow standalone`` running ``jobs/airflow_dag.py``.

One Airflow 3 (its own venv, SQLite, loopback, a DAGs folder holding only Flightdeck's DAG)
serves the whole module; jobs run the real ``python -m jobs.train`` against the session's
MLflow server. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from jobs.train import JOB_ID_TAG
from services.core.errors import RetrainingError
from services.core.processes import ServerProcess, free_port
from services.core.settings import EMBEDDED_HOST, PROJECT_ROOT, Settings
from services.core.store import Store
from services.retraining import jobs
from services.retraining.airflow import AirflowBackend
from services.retraining.engines import backend_for, job_environment
from tests.conftest import engine_venv
from tests.integration import engine_support as support

pytestmark = pytest.mark.integration

DAG_ID = "flightdeck_retrain"
USERNAME = "flightdeck"
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
JOB_TIMEOUT_S = 180.0
MARKER_VARIABLE = "FLIGHTDECK_TEST_AIRFLOW"
"""Set in Airflow's environment, so teardown finds every process it started (task processes
run in their own process groups)."""


@dataclass(frozen=True)
class Airflow:
    """The module's Airflow and how to log in."""

    url: str
    password: str
    process: subprocess.Popen[bytes]
    log_path: Path


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """``airflow standalone`` on a free loopback port; every process it started is gone after."""
    venv = engine_venv("airflow")
    home = tmp_path_factory.mktemp("airflow")
    dags = home / "dags"
    dags.mkdir()
    # Only the DAG: pointing Airflow at jobs/ would make it parse every job module.
    (dags / "airflow_dag.py").symlink_to(PROJECT_ROOT / "jobs" / "airflow_dag.py")
    password = uuid.uuid4().hex
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USERNAME: password}))  # the simple auth manager's users
    port = free_port()
    url = f"http://{EMBEDDED_HOST}:{port}"
    marker = uuid.uuid4().hex
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "MLFLOW_")) and k not in {"VIRTUAL_ENV", "PYTHONHOME"}
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",  # standalone runs `airflow ...`
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__PARALLELISM="2",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USERNAME}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__API__HOST=EMBEDDED_HOST,
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=url,
        # Task processes report to the API server: by default they would look for it on 8080.
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{url}/execution/",
        # The scheduler's and triggerer's log servers default to 8793 and 8794 (and listen on
        # every interface, with no setting to change that): free ports avoid clashes at least.
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__API_AUTH__JWT_SECRET=uuid.uuid4().hex,
        AIRFLOW__API__SECRET_KEY=uuid.uuid4().hex,
        FLIGHTDECK_PYTHON=sys.executable,
        **{MARKER_VARIABLE: marker},
    )
    log_path = home / "standalone.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "airflow"), "standalone"],
            cwd=home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Airflow(url, password, process, log_path)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        _stop(process, marker)


@pytest.fixture
def backend(airflow: Airflow) -> AirflowBackend:
    return AirflowBackend(airflow.url, DAG_ID, USERNAME, airflow.password)


def dag_run_count(airflow: Airflow) -> int:
    token = _token(airflow.url, airflow.password)
    response = requests.get(
        f"{airflow.url}/api/v2/dags/{DAG_ID}/dagRuns",
        params={"limit": "1"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return int(response.json()["total_entries"])


def test_training_runs_as_a_dag_run_and_registers_a_version_with_the_job_id(
    store: Store, backend: AirflowBackend, mlflow_server: ServerProcess, unique_name: str
) -> None:
    job = support.submit(store, backend, unique_name, mlflow_server.url)

    assert (job.engine, job.engine_ref) == ("airflow", f"{DAG_ID}/flightdeck__{job.job_id}")
    done = support.wait_done(store, backend, job.job_id, JOB_TIMEOUT_S, poll_s=1)

    assert (done.status, done.exit_code) == ("succeeded", 0), done.status_reason
    assert done.started_at is not None and done.ended_at is not None
    log = jobs.job_log(backend, done)
    assert f"Training wine-classifier (classification) for job {job.job_id}" in log
    assert f"Registered {unique_name} version 1" in log
    [version] = MlflowClient(mlflow_server.url).search_model_versions(f"name='{unique_name}'")
    assert version.tags[JOB_ID_TAG] == job.job_id


def test_submitting_the_same_job_twice_gives_one_dag_run(
    backend: AirflowBackend, airflow: Airflow
) -> None:
    job_id = uuid.uuid4().hex
    command = support.train_command(job_id, "unused", model="no-such-model")
    before = dag_run_count(airflow)

    first = backend.submit(job_id, command, {})
    second = backend.submit(job_id, command, {})

    assert first == second == f"{DAG_ID}/flightdeck__{job_id}"
    assert dag_run_count(airflow) == before + 1
    backend.cancel(first)  # a queued run is cancelled too
    assert backend.status(first).state == "cancelled"


def test_failing_training_ends_failed_with_its_exit_code_and_last_line(
    store: Store, backend: AirflowBackend, mlflow_server: ServerProcess, unique_name: str
) -> None:
    job = support.submit(store, backend, unique_name, mlflow_server.url, model="no-such-model")

    done = support.wait_done(store, backend, job.job_id, JOB_TIMEOUT_S, poll_s=1)

    assert (done.status, done.exit_code) == ("failed", 2)
    assert "Exited with code 2" in done.status_reason
    last_line = backend.logs(job.engine_ref or "", tail=1)
    assert "No demo model named 'no-such-model'" in last_line
    assert last_line in done.status_reason


def test_unknown_dag_is_refused_and_the_job_recorded_failed_never_started(
    store: Store, airflow: Airflow, mlflow_server: ServerProcess, unique_name: str
) -> None:
    backend = AirflowBackend(airflow.url, "no_such_dag", USERNAME, airflow.password)

    with pytest.raises(RetrainingError, match=r"no DAG 'no_such_dag'.*jobs/airflow_dag\.py"):
        support.submit(store, backend, unique_name, mlflow_server.url)

    [job] = jobs.list_jobs(store)
    assert (job.status, job.engine_ref, job.started_at) == ("failed", None, None)
    assert "no_such_dag" in job.status_reason


def test_unreachable_airflow_is_refused_and_nothing_starts(
    store: Store, mlflow_server: ServerProcess, unique_name: str
) -> None:
    url = f"http://{EMBEDDED_HOST}:{free_port()}"
    backend = AirflowBackend(url, DAG_ID, USERNAME, "whatever", timeout_s=3)

    with pytest.raises(RetrainingError, match=re.escape(f"Airflow API at {url} is unreachable")):
        support.submit(store, backend, unique_name, mlflow_server.url)

    [job] = jobs.list_jobs(store)
    assert (job.status, job.engine_ref) == ("failed", None)


def test_wrong_password_is_refused_naming_the_credentials(airflow: Airflow) -> None:
    backend = AirflowBackend(airflow.url, DAG_ID, USERNAME, "not-the-password")
    before = dag_run_count(airflow)

    with pytest.raises(RetrainingError, match="rejected the credentials of user 'flightdeck'"):
        backend.submit(uuid.uuid4().hex, support.train_command("x", "unused"), {})

    assert dag_run_count(airflow) == before


def test_cancel_stops_the_running_training_and_ends_cancelled(
    store: Store, backend: AirflowBackend, unique_name: str
) -> None:
    with socket.socket() as silent:  # accepts connections, never answers: training waits
        silent.bind((EMBEDDED_HOST, 0))
        silent.listen(16)
        tracking_uri = f"http://{EMBEDDED_HOST}:{silent.getsockname()[1]}"
        job = support.submit(
            store,
            backend,
            unique_name,
            tracking_uri,
            extra_env={"FLIGHTDECK_HTTP_TIMEOUT": "150", "FLIGHTDECK_HTTP_MAX_RETRIES": "0"},
        )
        support.wait_training_started(backend, job, time.monotonic() + JOB_TIMEOUT_S)
        assert support.pids_with(job.job_id), "the training's process should be running"

        cancelled = jobs.cancel_retraining(
            store, backend, support.OPERATOR, job.job_id, "wrong data"
        )

        assert cancelled.status == "cancelled"
        assert backend.status(job.engine_ref or "").state == "cancelled"
        deadline = time.monotonic() + 30
        while support.pids_with(job.job_id):
            assert time.monotonic() < deadline, "the training outlived the cancel"
            time.sleep(0.2)


def test_dag_run_with_a_bad_conf_fails_saying_what_is_wrong(
    backend: AirflowBackend, airflow: Airflow
) -> None:
    run_id = f"flightdeck__{uuid.uuid4().hex}"
    response = requests.post(  # what a person triggering the DAG by hand might send
        f"{airflow.url}/api/v2/dags/{DAG_ID}/dagRuns",
        json={"dag_run_id": run_id, "logical_date": None, "conf": {"train_args": "--model x"}},
        headers={"Authorization": f"Bearer {_token(airflow.url, airflow.password)}"},
        timeout=10,
    )
    assert response.ok, response.text
    ref = f"{DAG_ID}/{run_id}"

    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (status := backend.status(ref)).state in ("queued", "running"):
        assert time.monotonic() < deadline, "the run never ended"
        time.sleep(1)

    assert (status.state, status.exit_code) == ("failed", None)
    assert "train_args'] must be a list of strings" in backend.logs(ref)


def test_only_the_training_job_may_run_on_airflow(backend: AirflowBackend) -> None:
    with pytest.raises(RetrainingError, match=r"only `python -m jobs\.train`"):
        backend.submit(uuid.uuid4().hex, [sys.executable, "-c", "print('anything')"], {})


# -- the server --------------------------------------------------------------------------------


def test_the_dag_run_is_sent_no_credentials(
    store: Store,
    airflow: Airflow,
    mlflow_server: ServerProcess,
    unique_name: str,
    settings_for: Callable[..., Settings],
) -> None:
    # A tracking URI with user:password@, a token and a password in the environment: what the
    # dashboard would be configured with. The dag run's conf Airflow stores must hold none.
    host = mlflow_server.url.removeprefix("http://")
    settings = settings_for(
        f"http://ada:uri-s3cret@{host}",
        MLFLOW_TRACKING_TOKEN="token-s3cret",
        FLIGHTDECK_RETRAINING_ENGINE="airflow",
        FLIGHTDECK_AIRFLOW_URL=airflow.url,
        FLIGHTDECK_AIRFLOW_USERNAME=USERNAME,
        FLIGHTDECK_AIRFLOW_PASSWORD=airflow.password,
        FLIGHTDECK_HTTP_TIMEOUT="30",  # a busy standalone Airflow answers slowly
    )
    backend = backend_for(settings)
    env = {**job_environment(settings), "MLFLOW_TRACKING_PASSWORD": "env-s3cret"}
    job = support.submit(store, backend, unique_name, "", model="no-such-model", extra_env=env)
    assert job.engine_ref
    dag_id, run_id = job.engine_ref.split("/")

    run = requests.get(
        f"{airflow.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}",
        headers={"Authorization": f"Bearer {_token(airflow.url, airflow.password)}"},
        timeout=30,
    ).json()

    sent = json.dumps(run["conf"])
    for secret in ("uri-s3cret", "token-s3cret", "env-s3cret", "ada@", airflow.password):
        assert secret not in sent
    assert run["conf"]["env"]["MLFLOW_TRACKING_URI"] == mlflow_server.url
    support.wait_done(store, backend, job.job_id, JOB_TIMEOUT_S)


def _token(url: str, password: str) -> str:
    response = requests.post(
        f"{url}/auth/token", json={"username": USERNAME, "password": password}, timeout=10
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _wait_until_ready(airflow: Airflow) -> None:
    """Until every component reports healthy and the DAG is parsed."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if airflow.process.poll() is not None:
            raise RuntimeError(f"airflow standalone exited:\n{support.tail(airflow.log_path)}")
        with contextlib.suppress(requests.RequestException, ValueError):
            health = requests.get(f"{airflow.url}/api/v2/monitor/health", timeout=2).json()
            if all(part.get("status") == "healthy" for part in health.values()):
                token = _token(airflow.url, airflow.password)
                dag = requests.get(
                    f"{airflow.url}/api/v2/dags/{DAG_ID}",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=5,
                )
                if dag.ok:
                    return
        time.sleep(0.5)
    raise RuntimeError(
        f"Airflow did not parse {DAG_ID} within {STARTUP_TIMEOUT_S:.0f} s:\n"
        f"{support.tail(airflow.log_path)}"
    )


def _stop(process: subprocess.Popen[bytes], marker: str) -> None:
    """SIGTERM the group (``standalone`` ignores SIGINT once its components stopped), then
    SIGKILL whatever is left, including task processes in their own groups."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while (
        _group_alive(process.pid) or support.pids_with(f"{MARKER_VARIABLE}={marker}", environ=True)
    ) and (time.monotonic() < deadline):
        process.poll()  # reap the leader
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in support.pids_with(f"{MARKER_VARIABLE}={marker}", environ=True):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while support.pids_with(f"{MARKER_VARIABLE}={marker}", environ=True):
        assert time.monotonic() < deadline, "Airflow processes are left behind"
        time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
