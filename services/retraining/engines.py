"""The composition of retraining: which engine runs jobs, and the command it runs.

The engine comes from ``FLIGHTDECK_RETRAINING_ENGINE`` (``local`` by default); every engine runs
the same ``python -m jobs.train`` with the job's lineage as arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from services.core.redaction import without_userinfo
from services.core.settings import Settings
from services.retraining.base import TRAIN_MODULE, Backend

JOBS_FOLDER = "jobs"
"""The local engine's job folders, inside the data folder."""


def backend_for(settings: Settings) -> Backend:
    """The configured engine."""
    if settings.retraining_engine == "prefect":
        from services.retraining.prefect import PrefectBackend

        return PrefectBackend(
            settings.prefect_api_url,
            settings.prefect_deployment,
            settings.http_timeout_s,
            redactor=settings.redactor,
        )
    if settings.retraining_engine == "airflow":
        from services.retraining.airflow import AirflowBackend

        return AirflowBackend(
            settings.airflow_url,
            settings.airflow_dag_id,
            settings.airflow_username,
            settings.airflow_password,
            settings.http_timeout_s,
            redactor=settings.redactor,
        )
    from services.retraining.local import LocalBackend

    return LocalBackend(settings.data_dir / JOBS_FOLDER, redactor=settings.redactor)


def training_command(
    model: str,
    trigger: str,
    requested_by: str,
    *,
    cause_run_id: str | None = None,
    policy: str | None = None,
) -> Callable[[str], list[str]]:
    """Builds ``python -m jobs.train ...`` for a job id, with the job's lineage."""

    def command(job_id: str) -> list[str]:
        args = [sys.executable, "-m", TRAIN_MODULE, "--model", model, "--trigger", trigger]
        args += ["--job-id", job_id, "--requested-by", requested_by]
        if cause_run_id:
            args += ["--cause-run-id", cause_run_id]
        if policy:
            args += ["--policy", policy]
        return args

    return command


def job_environment(settings: Settings) -> dict[str, str]:
    """What a job needs to reach MLflow: the tracking URI, without ``user:password@``
    (credentials stay in the engine's own environment, so they are never stored in a remote
    engine's run parameters)."""
    return {"MLFLOW_TRACKING_URI": without_userinfo(settings.tracking_uri)}
