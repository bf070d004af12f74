"""Helpers the Prefect and Airflow engine tests share: what they submit and how they wait.

Starting each engine, and its backend, stays in that engine's test module.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

from services.core.store import Store
from services.governance.auth import Identity
from services.retraining import jobs
from services.retraining.base import Backend
from services.retraining.jobs import RetrainingJob

OPERATOR = Identity("omar", False, "operator")
TRAINING_STARTED = "Training wine-classifier"
"""What ``jobs.train`` prints before its first call to MLflow: the training process is up."""


def train_command(job_id: str, name: str, model: str = "wine-classifier") -> list[str]:
    """The real ``python -m jobs.train`` for ``model``, into experiment and model ``name``."""
    return [
        sys.executable,
        "-m",
        "jobs.train",
        "--model",
        model,
        "--job-id",
        job_id,
        "--experiment",
        name,
        "--register-as",
        name,
        "--trigger",
        "manual",
        "--requested-by",
        OPERATOR.name,
    ]


def submit(
    store: Store,
    backend: Backend,
    name: str,
    tracking_uri: str,
    *,
    model: str = "wine-classifier",
    extra_env: dict[str, str] | None = None,
) -> RetrainingJob:
    """Submit a manual retraining of ``model`` as :data:`OPERATOR`, training against
    ``tracking_uri``.

    The job is recorded for ``wine-classifier`` whatever ``model`` is: a ``model`` the demo lacks
    only makes the training itself fail. A fresh idempotency key makes every call a new job.
    """
    return jobs.submit_retraining(
        store,
        backend,
        OPERATOR,
        model="wine-classifier",
        trigger="manual",
        params={"max_depth": 3},
        idempotency_key=uuid.uuid4().hex,
        command_for=lambda job_id: train_command(job_id, name, model),
        env={"MLFLOW_TRACKING_URI": tracking_uri, **(extra_env or {})},
    )


def wait_done(
    store: Store, backend: Backend, job_id: str, timeout_s: float, *, poll_s: float = 0.5
) -> RetrainingJob:
    """Refresh the jobs until ``job_id`` is no longer active; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs.refresh_jobs(store, backend)
        job = jobs.get_job(store, job_id)
        if not job.is_active:
            return job
        time.sleep(poll_s)
    raise AssertionError(f"job {job_id} still active after {timeout_s:.0f} s")


def wait_training_started(backend: Backend, job: RetrainingJob, deadline: float) -> None:
    """Until the job's log shows :data:`TRAINING_STARTED`; fail at ``deadline`` (monotonic)."""
    while TRAINING_STARTED not in jobs.job_log(backend, job):
        assert time.monotonic() < deadline, "the training never started"
        time.sleep(0.5)


def pids_with(text: str, *, environ: bool = False) -> list[int]:
    """Live processes whose command line (or environment) contains ``text``; zombies excluded."""
    needle = text.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            data = (entry / ("environ" if environ else "cmdline")).read_bytes()
        except (OSError, IndexError):
            continue
        if any(needle in part for part in data.split(b"\0")):
            found.append(int(entry.name))
    return found


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` of a server's log, for a failure message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
