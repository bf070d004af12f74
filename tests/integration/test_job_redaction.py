"""Credentials never land in the store: a failed job's reason and log tail, an engine's refusal,
and the audit events about them are redacted before they are stored.

Real parts: the local engine runs a real process that prints secrets, and the remote engines
are asked at a loopback port where nothing listens.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.core.errors import RetrainingError
from services.core.processes import free_port
from services.core.settings import Settings
from services.core.store import Store, open_store
from services.governance import audit
from services.governance.audit_anchor import open_audited_store
from services.governance.auth import Identity
from services.retraining import jobs
from services.retraining.base import Backend
from services.retraining.engines import backend_for

pytestmark = pytest.mark.integration

OPERATOR = Identity("omar", False, "operator")
SECRETS = {
    "MLFLOW_TRACKING_PASSWORD": "mlflow-pass-s3cret",
    "MLFLOW_TRACKING_TOKEN": "mlflow-token-s3cret",
    "FLIGHTDECK_AIRFLOW_PASSWORD": "airflow-pass-s3cret",
    "FLIGHTDECK_AUDIT_KEY": "audit-key-s3cret-" + "x" * 20,
}
STORE_PASSWORD = "store-pass-s3cret"  # in the store URL of the settings, not of this SQLite file
URL_PASSWORD = "url-only-s3cret"  # configured nowhere: masked because it is a URL's password


def leaky_training(settings: Settings) -> list[str]:
    """A training that prints every credential it could have seen, then fails."""
    lines = [*settings.secret_values, f"connecting to postgresql://fd:{URL_PASSWORD}@db:5432/fd"]
    script = "import sys\n" + "".join(f"print({line!r})\n" for line in lines)
    script += "print('Traceback: boom', file=sys.stderr)\nraise SystemExit(3)\n"
    return [sys.executable, "-c", script]


def everything_stored(db: Path) -> str:
    """The whole database as SQL text: whatever is in any row of any table."""
    with sqlite3.connect(db) as connection:
        return "\n".join(connection.iterdump())


def every_secret(settings: Settings) -> list[str]:
    return [*settings.secret_values, URL_PASSWORD]


def submit(store: Store, backend: Backend, command: list[str]) -> jobs.RetrainingJob:
    return jobs.submit_retraining(
        store,
        backend,
        OPERATOR,
        model="wine-classifier",
        trigger="manual",
        params={},
        idempotency_key=f"key-{time.monotonic_ns()}",
        command_for=lambda _job_id: command,
    )


@pytest.fixture
def configured(tmp_path: Path, settings_for: Callable[..., Settings]) -> Callable[..., Settings]:
    def build(**env: str) -> Settings:
        return settings_for(
            "http://127.0.0.1:5000",
            FLIGHTDECK_DATA_DIR=str(tmp_path),
            **SECRETS,
            **env,
        )

    return build


def test_a_failed_jobs_reason_log_tail_and_audit_events_hold_no_secret(
    tmp_path: Path, configured: Callable[..., Settings]
) -> None:
    settings = configured()
    # Production's list of secrets includes the store URL's password; this store is SQLite.
    production = configured(FLIGHTDECK_STORE_URL=f"postgresql+psycopg://fd:{STORE_PASSWORD}@db/fd")
    assert STORE_PASSWORD in production.secret_values
    store = open_store(
        settings.store_url, audit_key=production.audit_key, redactor=production.redactor
    )
    backend = backend_for(production)

    job = submit(store, backend, leaky_training(production))
    deadline = time.monotonic() + 60
    while jobs.get_job(store, job.job_id).is_active:
        assert time.monotonic() < deadline, "the job never finished"
        jobs.refresh_jobs(store, backend)
        time.sleep(0.1)

    done = jobs.get_job(store, job.job_id)
    assert (done.status, done.exit_code) == ("failed", 3)
    assert "Last log lines:" in done.status_reason
    assert "postgresql://fd:***@db:5432/fd" in done.status_reason
    assert done.status_reason.count("***") >= len(every_secret(production))
    log = jobs.job_log(backend, done)
    with store.read() as connection:
        (failed,) = audit.events(connection, actions=["retraining.failed"])
        assert audit.verify(connection).intact
    assert "***" in failed.details["status_reason"]
    stored = everything_stored(settings.data_dir / "flightdeck.db")
    for secret in every_secret(production):
        assert secret not in done.status_reason, secret
        assert secret not in log, secret
        assert secret not in stored, secret


@pytest.mark.parametrize("engine", ["prefect", "airflow"])
def test_an_engine_that_cannot_start_is_recorded_without_its_urls_password(
    tmp_path: Path, configured: Callable[..., Settings], engine: str
) -> None:
    nowhere = f"http://svc:{URL_PASSWORD}@127.0.0.1:{free_port()}"  # nothing listens there
    settings = configured(
        FLIGHTDECK_RETRAINING_ENGINE=engine,
        FLIGHTDECK_PREFECT_API_URL=f"{nowhere}/api",
        FLIGHTDECK_AIRFLOW_URL=nowhere,
        FLIGHTDECK_HTTP_TIMEOUT="3",
    )
    store = open_audited_store(settings, anchor=None)
    backend = backend_for(settings)
    command = [sys.executable, "-m", "jobs.train", "--model", "wine-classifier"]

    with pytest.raises(RetrainingError) as refused:
        submit(store, backend, command)

    assert URL_PASSWORD not in str(refused.value)
    assert "svc:***@127.0.0.1" in str(refused.value)
    (job,) = jobs.list_jobs(store)
    assert job.status == "failed"
    assert "svc:***@127.0.0.1" in job.status_reason
    stored = everything_stored(settings.data_dir / "flightdeck.db")
    for secret in every_secret(settings):
        assert secret not in stored, secret
