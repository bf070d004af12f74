"""The Prefect 3 flow that runs Flightdeck's retraining job: ``flightdeck-retrain``.

Flightdeck's ``prefect`` engine (:mod:`services.retraining.prefect`) creates one run of the
deployment ``flightdeck-retrain/flightdeck-retrain`` per retraining job over Prefect's REST API,
with the parameters::

    {"train_args": ["--model", "wine-classifier", "--job-id", "...", ...],
     "env": {"MLFLOW_TRACKING_URI": "http://...", "FLIGHTDECK_JOB_ID": "..."}}

The flow runs ``<project python> -m jobs.train <train_args>`` in the project folder with ``env``
added to the worker's environment, copies every output line into the flow run's log, and fails
with ``exited with code N`` and the last stderr line when the training fails. It accepts only
arguments, never a command: whoever may start the deployment can retrain a model, not run
arbitrary programs.

Registering the deployment (what ``make prefect-deploy`` runs)::

    PREFECT_API_URL=http://127.0.0.1:4200/api .engines/prefect/bin/python jobs/prefect_flow.py

creates the ``process`` work pool ``flightdeck`` when it is missing and (re)registers the
deployment, with this folder as its code location. Then start a worker on the same machine::

    PREFECT_API_URL=... .engines/prefect/bin/prefect worker start --pool flightdeck --type process

The worker runs each flow run in a subprocess of its own venv (Prefect's); the training runs
with the project's Python: ``FLIGHTDECK_PYTHON``, else ``<project>/.venv/bin/python``.

This module runs inside Prefect's venv: it must not import mlflow or Flightdeck's ``services``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from prefect import flow, get_run_logger
from prefect.states import Failed, State

FLOW_NAME = "flightdeck-retrain"
DEPLOYMENT_NAME = "flightdeck-retrain"
"""``FLOW_NAME/DEPLOYMENT_NAME`` must match Flightdeck's ``prefect_deployment`` setting."""
WORK_POOL = "flightdeck"
"""The ``process`` work pool the deployment runs on; its worker must run on this machine."""
TRAIN_MODULE = "jobs.train"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The folder holding ``jobs/``: the training's working directory (for ``python -m``)."""
STOP_GRACE_S = 10.0
"""How long the training may take to stop after SIGTERM when the flow run is cancelled."""


def project_python() -> str:
    """The interpreter that runs the training: ``FLIGHTDECK_PYTHON``, else the project's venv."""
    return os.environ.get("FLIGHTDECK_PYTHON") or str(PROJECT_ROOT / ".venv" / "bin" / "python")


# Prefect runs in its own venv, not this one: mypy sees @flow untyped (Any).
@flow(name=FLOW_NAME, retries=0, log_prints=False, validate_parameters=True)  # type: ignore[untyped-decorator]
def retrain(train_args: list[str], env: dict[str, str] | None = None) -> State | None:
    """Run ``python -m jobs.train <train_args>`` with ``env`` added, logging each line.

    Returns:
        None when the training exited 0; otherwise a ``Failed`` state whose message holds
        ``exited with code N`` and the last line the training wrote on stderr (``jobs.train``
        writes its reason there). A returned state rather than an exception: the state's
        message is exactly that line, and Prefect logs no traceback of this function.
    """
    logger = get_run_logger()
    command = [project_python(), "-m", TRAIN_MODULE, *train_args]
    logger.info("Running %s in %s", " ".join(command), PROJECT_ROOT)
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},  # lines arrive as printed
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        bufsize=1,
    )
    last_stderr: list[str] = []
    try:
        # Two readers, so a chatty stream never blocks the other one's pipe.
        reader = threading.Thread(
            target=_pump, args=(process.stderr, logger, logging.WARNING, last_stderr), daemon=True
        )
        reader.start()
        _pump(process.stdout, logger, logging.INFO, [])
        reader.join()
        code = process.wait()
    finally:
        # On a cancel the worker stops this process, and Prefect raises in this thread: take
        # the training down with it rather than leave it running unobserved.
        _stop(process)
    if code != 0:
        reason = last_stderr[0] if last_stderr else "(nothing on stderr)"
        _flush(logger)
        return Failed(message=f"{TRAIN_MODULE} exited with code {code}: {reason}")
    logger.info("%s exited with code 0", TRAIN_MODULE)
    _flush(logger)
    return None


def _flush(logger: logging.LoggerAdapter[logging.Logger]) -> None:
    """Send the buffered log lines to the API now, before the run's final state.

    Prefect ships logs in batches every 2 s; Flightdeck quotes a failed run's last lines as
    soon as it sees the final state, so they must be there first.
    """
    current: logging.Logger | None = logger.logger
    while current is not None:
        for handler in current.handlers:
            handler.flush()
        current = current.parent if current.propagate else None


def _pump(
    stream: IO[str] | None,
    logger: logging.LoggerAdapter[logging.Logger],
    level: int,
    last: list[str],
) -> None:
    """Log every line of ``stream`` at ``level``; keep its last non-empty line in ``last``."""
    if stream is None:
        return
    with stream:
        for raw in stream:
            line = raw.rstrip("\n")
            logger.log(level, "%s", line)
            if line.strip():
                last[:] = [line.strip()]


def _stop(process: subprocess.Popen[str]) -> None:
    """Terminate the training if it still runs: SIGTERM, then SIGKILL after a grace period."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


def register(work_pool: str = WORK_POOL) -> str:
    """Create the ``process`` work pool if missing and (re)register the deployment.

    Uses ``PREFECT_API_URL`` from the environment. Returns the deployment's id.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    pool = WorkPoolCreate(
        name=work_pool,
        type=ProcessWorker.type,
        base_job_template=ProcessWorker.get_default_base_job_template(),
    )
    # A second deploy keeps an existing pool as it is (its settings may have been tuned).
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(pool)
    # The code stays where it is: a local source makes each run work in this folder, so a
    # worker on this machine picks up code changes without a rebuild (no image, no upload).
    source = retrain.from_source(
        source=str(PROJECT_ROOT), entrypoint="jobs/prefect_flow.py:retrain"
    )
    deployment_id = source.deploy(
        name=DEPLOYMENT_NAME,
        work_pool_name=work_pool,
        tags=["flightdeck"],
        description="Retrains a Flightdeck model with `python -m jobs.train`.",
        print_next_steps=False,
        ignore_warnings=True,  # the advice to use .serve(): a worker is what we want here
    )
    return str(deployment_id)


def main() -> int:
    """``make prefect-deploy``: register the deployment; 1 with a reason when it cannot."""
    import httpx

    api_url = os.environ.get("PREFECT_API_URL", "")
    if not api_url:
        print("Set PREFECT_API_URL to the Prefect server's API, e.g. http://127.0.0.1:4200/api.")
        return 1
    try:
        deployment_id = register()
    except httpx.HTTPError as exc:
        print(
            f"Cannot register the deployment on the Prefect server at {api_url}: {exc}. "
            "Start it (`prefect server start`) or point PREFECT_API_URL at it.",
            file=sys.stderr,
        )
        return 1
    print(f"Registered {FLOW_NAME}/{DEPLOYMENT_NAME} on work pool {WORK_POOL}: {deployment_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
