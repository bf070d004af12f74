"""The Prefect engine against a real Prefect 3 server and process worker, training for real.

One ``prefect server start`` (own ``PREFECT_HOME``, SQLite, loopback) and one process worker
serve the whole module; the deployment is registered by ``jobs/prefect_flow.py``, the command
``make prefect-deploy`` runs. Jobs train against the session's real MLflow server.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from services.core.conventions import JOB_ID_TAG
from services.core.errors import RetrainingError
from services.core.processes import ServerProcess, free_port
from services.core.settings import PROJECT_ROOT, Settings
from services.core.store import Store
from services.retraining import jobs
from services.retraining.engines import backend_for, job_environment
from services.retraining.prefect import PrefectBackend
from tests.conftest import engine_venv
from tests.integration import engine_support as support

pytestmark = pytest.mark.integration

DEPLOYMENT = "flightdeck-retrain/flightdeck-retrain"
"""The default of ``Settings.prefect_deployment``, which ``jobs/prefect_flow.py`` registers."""
WORK_POOL = "flightdeck"
SERVER_STARTUP_S = 90.0
"""About 14 s on a fresh SQLite database with 2 cores; room for a busy machine."""
JOB_TIMEOUT_S = 120.0


def _spawn(
    name: str, url: str, command: list[str], env: dict[str, str], log: Path
) -> ServerProcess:
    """Start ``command`` in its own process group, output to ``log``."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ServerProcess(name=name, url=url, process=process, log_path=log)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server with the deployment registered and a process worker; its API URL."""
    venv = engine_venv("prefect")
    home = tmp_path_factory.mktemp("prefect")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # pick up a new run within a second, not 10
        "FLIGHTDECK_PYTHON": sys.executable,  # the training runs in this (the project's) venv
    }
    prefect = str(venv / "bin" / "prefect")
    started = time.monotonic()
    server = _spawn(
        "Prefect",
        api_url,
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        home / "server.log",
    )
    worker: ServerProcess | None = None
    try:
        deadline = time.monotonic() + SERVER_STARTUP_S
        while True:
            assert server.process.poll() is None, f"server exited:\n{support.tail(server.log_path)}"
            assert time.monotonic() < deadline, (
                f"server never healthy:\n{support.tail(server.log_path)}"
            )
            try:
                if requests.get(f"{api_url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        healthy = time.monotonic()
        deployed = subprocess.run(
            [str(venv / "bin" / "python"), "jobs/prefect_flow.py"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert deployed.returncode == 0, f"deploy failed:\n{deployed.stdout}\n{deployed.stderr}"
        worker = _spawn(
            "Prefect worker",
            api_url,
            [prefect, "worker", "start", "--pool", WORK_POOL, "--type", "process"],
            env,
            home / "worker.log",
        )
        print(
            f"\nPrefect healthy in {healthy - started:.1f} s, deployed in "
            f"{time.monotonic() - healthy:.1f} s",
            file=sys.stderr,
        )
        yield api_url
    finally:
        # SIGINT is what stops a worker; the server goes last so the worker can say goodbye.
        if worker is not None:
            worker.stop(timeout_s=8)
        server.stop(timeout_s=8)


@pytest.fixture
def backend(prefect_api: str) -> PrefectBackend:
    return PrefectBackend(prefect_api, DEPLOYMENT)


def flow_runs_named(api_url: str, name: str) -> list[str]:
    response = requests.post(
        f"{api_url}/flow_runs/filter",
        json={"flow_runs": {"name": {"any_": [name]}}, "limit": 10},
        timeout=10,
    )
    response.raise_for_status()
    return [run["id"] for run in response.json()]


def test_job_trains_registers_a_version_and_succeeds_on_prefect(
    store: Store, backend: PrefectBackend, mlflow_server: ServerProcess, unique_name: str
) -> None:
    started = time.monotonic()
    job = support.submit(store, backend, unique_name, mlflow_server.url)

    assert (job.status, job.engine) == ("running", "prefect") and job.engine_ref
    done = support.wait_done(store, backend, job.job_id, JOB_TIMEOUT_S)
    print(f"\nPrefect job finished in {time.monotonic() - started:.1f} s", file=sys.stderr)

    assert (done.status, done.exit_code) == ("succeeded", 0), done.status_reason
    assert done.started_at is not None and done.ended_at is not None
    log = jobs.job_log(backend, done)
    assert f"Training wine-classifier (classification) for job {job.job_id}" in log
    assert f"Registered {unique_name} version 1 from run" in log
    [version] = MlflowClient(mlflow_server.url).search_model_versions(f"name = '{unique_name}'")
    assert version.tags[JOB_ID_TAG] == job.job_id


def test_same_idempotency_key_creates_one_flow_run(
    backend: PrefectBackend, prefect_api: str, unique_name: str
) -> None:
    job_id = uuid.uuid4().hex
    command = support.train_command(job_id, unique_name, model="no-such-model")  # ends at once

    first = backend.submit(job_id, command, {})
    second = backend.submit(job_id, command, {})

    assert first == second
    assert flow_runs_named(prefect_api, f"flightdeck-{job_id[:12]}") == [first]


def test_failing_training_is_failed_with_its_exit_code_and_last_line(
    store: Store, backend: PrefectBackend, mlflow_server: ServerProcess, unique_name: str
) -> None:
    job = support.submit(store, backend, unique_name, mlflow_server.url, model="no-such-model")

    done = support.wait_done(store, backend, job.job_id, JOB_TIMEOUT_S)

    assert (done.status, done.exit_code) == ("failed", 2)
    assert "Exited with code 2." in done.status_reason
    assert "Error: No demo model named 'no-such-model'" in done.status_reason
    assert jobs.get_job(store, job.job_id).ended_at is not None


def test_missing_deployment_is_refused_and_the_job_recorded_failed(
    store: Store, prefect_api: str, mlflow_server: ServerProcess, unique_name: str
) -> None:
    backend = PrefectBackend(prefect_api, "flightdeck-retrain/no-such-deployment")
    with pytest.raises(RetrainingError, match=r"no deployment .*make prefect-deploy"):
        backend.submit("a" * 32, support.train_command("a" * 32, unique_name), {})

    with pytest.raises(RetrainingError, match="could not start the job"):
        support.submit(store, backend, unique_name, mlflow_server.url)

    [job] = jobs.list_jobs(store)
    assert (job.status, job.engine_ref, job.started_at) == ("failed", None, None)
    assert "make prefect-deploy" in job.status_reason


def test_unreachable_prefect_server_is_refused_and_nothing_starts(
    store: Store, mlflow_server: ServerProcess, unique_name: str
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    backend = PrefectBackend(nowhere, DEPLOYMENT, timeout_s=3)

    with pytest.raises(
        RetrainingError, match=re.escape(f"Prefect server at {nowhere} is unreachable")
    ):
        backend.submit("b" * 32, support.train_command("b" * 32, unique_name), {})
    with pytest.raises(RetrainingError, match="unreachable"):
        support.submit(store, backend, unique_name, mlflow_server.url)

    [job] = jobs.list_jobs(store)
    assert (job.status, job.engine_ref, job.started_at) == ("failed", None, None)


def test_cancel_stops_a_running_training(
    store: Store, backend: PrefectBackend, unique_name: str
) -> None:
    # A tracking server that accepts connections and never answers: the training hangs.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        job = support.submit(
            store, backend, unique_name, f"http://127.0.0.1:{silent.getsockname()[1]}"
        )
        assert job.engine_ref
        deadline = time.monotonic() + JOB_TIMEOUT_S
        support.wait_training_started(backend, job, deadline)
        assert backend.status(job.engine_ref).state == "running"

        cancelled = jobs.cancel_retraining(
            store, backend, support.OPERATOR, job.job_id, "wrong data"
        )

        assert cancelled.status == "cancelled"
        while (seen := backend.status(job.engine_ref)).state != "cancelled":
            assert time.monotonic() < deadline, f"Prefect still reports {seen}"
            time.sleep(0.5)
    while support.pids_with(job.job_id):
        assert time.monotonic() < deadline, "the training outlived its cancelled flow run"
        time.sleep(0.5)
    assert jobs.refresh_jobs(store, backend) == []


def test_only_the_training_job_may_run_on_prefect() -> None:
    backend = PrefectBackend(f"http://127.0.0.1:{free_port()}/api", DEPLOYMENT)  # never asked

    with pytest.raises(RetrainingError, match=re.escape("only `python -m jobs.train`")):
        backend.submit("c" * 32, [sys.executable, "-c", "print('anything')"], {})


def test_the_flow_run_is_sent_no_credentials(
    store: Store,
    prefect_api: str,
    mlflow_server: ServerProcess,
    unique_name: str,
    settings_for: Callable[..., Settings],
) -> None:
    # A tracking URI with user:password@, a token and a password in the environment: what the
    # dashboard would be configured with. The flow run Prefect stores must hold none of them.
    host = mlflow_server.url.removeprefix("http://")
    settings = settings_for(
        f"http://ada:uri-s3cret@{host}",
        MLFLOW_TRACKING_TOKEN="token-s3cret",
        FLIGHTDECK_RETRAINING_ENGINE="prefect",
        FLIGHTDECK_PREFECT_API_URL=prefect_api,
    )
    backend = backend_for(settings)
    env = {**job_environment(settings), "MLFLOW_TRACKING_PASSWORD": "env-s3cret"}
    job = support.submit(store, backend, unique_name, "", model="no-such-model", extra_env=env)
    assert job.engine_ref

    run = requests.get(f"{prefect_api}/flow_runs/{job.engine_ref}", timeout=10).json()

    sent = json.dumps(run["parameters"])
    for secret in ("uri-s3cret", "token-s3cret", "env-s3cret", "ada@"):
        assert secret not in sent
    assert run["parameters"]["env"]["MLFLOW_TRACKING_URI"] == mlflow_server.url
    support.wait_done(store, backend, job.job_id, JOB_TIMEOUT_S)
