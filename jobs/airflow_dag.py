"""The Airflow 3 DAG that runs Flightdeck's retraining job: ``flightdeck_retrain``.

Flightdeck's ``airflow`` engine (:mod:`services.retraining.airflow`) triggers one run of this
DAG per retraining job over Airflow's REST API, with the run's ``conf``::

    {"train_args": ["--model", "wine-classifier", "--job-id", "...", ...],
     "env": {"MLFLOW_TRACKING_URI": "http://...", "FLIGHTDECK_JOB_ID": "..."}}

Its one task, ``train``, runs ``<project python> -m jobs.train <train_args>`` in the project
folder with ``env`` added to the worker's environment, copies every output line into the task
log, and fails with ``exited with code N`` and the last stderr line when the training fails.
It accepts only arguments, never a command: whoever may trigger the DAG can retrain a model,
not run arbitrary programs.

The DAG has no schedule (only API triggers start it), no catchup and no retries: a failed
training is reported to Flightdeck as failed, and Flightdeck decides whether to start another.

Installing it in a real Airflow 3 deployment:

1. Check out (or deploy) the Flightdeck project on every Airflow worker, with its venv built
   (``make`` creates ``.venv``), so ``<project>/.venv/bin/python -m jobs.train`` works there.
   Set ``FLIGHTDECK_PYTHON`` in the workers' environment to use another interpreter.
2. Put this one file in the DAGs folder (``[core] dags_folder``): a symlink to
   ``<project>/jobs/airflow_dag.py`` keeps the project root findable; a copy must be
   given ``FLIGHTDECK_PROJECT_ROOT``. Do not point the DAGs folder at ``jobs/`` itself:
   Airflow would parse every job module there.
3. Give Flightdeck an Airflow user that may trigger and edit runs of this DAG (``Op`` role or
   above), and set ``FLIGHTDECK_RETRAINING_ENGINE=airflow``, ``FLIGHTDECK_AIRFLOW_URL``,
   ``FLIGHTDECK_AIRFLOW_USERNAME`` and ``FLIGHTDECK_AIRFLOW_PASSWORD``.

New DAGs start paused; Flightdeck unpauses this one on its first submit.

This module runs inside Airflow's venv: it must not import mlflow or Flightdeck's ``services``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from airflow.sdk import dag, get_current_context, task

DAG_ID = "flightdeck_retrain"
"""Must match Flightdeck's ``airflow_dag_id`` setting."""
TRAIN_MODULE = "jobs.train"
PROJECT_ROOT = Path(
    os.environ.get("FLIGHTDECK_PROJECT_ROOT") or Path(__file__).resolve().parent.parent
)
"""The folder holding ``jobs/``: the training's working directory (for ``python -m``)."""

log = logging.getLogger("flightdeck.train")
"""Every line the training prints goes to this logger; Flightdeck's engine shows only these
lines (and Airflow's errors) as the job's log."""


class TrainingConfError(ValueError):
    """The run's ``conf`` is not what Flightdeck sends."""


def project_python() -> str:
    """The interpreter that runs the training: ``FLIGHTDECK_PYTHON``, else the project's venv."""
    return os.environ.get("FLIGHTDECK_PYTHON") or str(PROJECT_ROOT / ".venv" / "bin" / "python")


def parse_conf(conf: Mapping[str, Any] | None) -> tuple[list[str], dict[str, str]]:
    """The training's arguments and extra environment from a run's ``conf``.

    Raises:
        TrainingConfError: ``train_args`` is missing or not a list of strings, or ``env`` is
            not a mapping of strings to strings.
    """
    conf = conf or {}
    args = conf.get("train_args")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise TrainingConfError(
            f"dag_run.conf['train_args'] must be a list of strings (the arguments of "
            f"`python -m {TRAIN_MODULE}`), not {args!r}. Trigger this DAG from Flightdeck."
        )
    env = conf.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise TrainingConfError(f"dag_run.conf['env'] must map strings to strings, not {env!r}.")
    return list(args), dict(env)


def run_training(args: list[str], env: Mapping[str, str]) -> None:
    """Run ``python -m jobs.train <args>``, logging each line it prints, until it ends.

    The child stays in the task's process group: when Airflow kills the task (a run marked
    failed, a timeout), the signal reaches the training too.

    Raises:
        RuntimeError: The training exited non-zero; the message holds the code and the last
            line it wrote on stderr (``jobs.train`` writes its reason there).
    """
    command = [project_python(), "-m", TRAIN_MODULE, *args]
    log.info("Running %s in %s", " ".join(command), PROJECT_ROOT)
    try:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},  # lines arrive as printed
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise RuntimeError(
            f"Cannot start {command[0]} in {PROJECT_ROOT}: {exc}. Build the project's venv "
            "there, or set FLIGHTDECK_PYTHON (and FLIGHTDECK_PROJECT_ROOT for a copied DAG file)."
        ) from exc
    last_stderr: list[str] = []
    # Two readers, so a chatty stream never blocks the other one's pipe.
    reader = threading.Thread(target=_pump, args=(process.stderr, last_stderr), daemon=True)
    reader.start()
    _pump(process.stdout, [])
    reader.join()
    code = process.wait()
    if code != 0:
        reason = last_stderr[0] if last_stderr else "(nothing on stderr)"
        raise RuntimeError(f"{TRAIN_MODULE} exited with code {code}: {reason}")
    log.info("%s exited with code 0", TRAIN_MODULE)


def _pump(stream: IO[str] | None, last: list[str]) -> None:
    """Log every line of ``stream``; keep its last non-empty line in ``last``."""
    if stream is None:
        return
    with stream:
        for raw in stream:
            line = raw.rstrip("\n")
            log.info("%s", line)
            if line.strip():
                last[:] = [line.strip()]


# Airflow runs in its own venv, not this one: mypy sees its decorators untyped (Any).
@dag(  # type: ignore[untyped-decorator]
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    max_active_runs=4,  # Flightdeck runs one job per model at a time; a few models at once
    tags=["flightdeck"],
    doc_md=__doc__,
)
def flightdeck_retrain() -> None:
    """Retrain a model with ``jobs.train``; started only by Flightdeck over the REST API."""

    # Flightdeck, not Airflow, decides on another try. The ignore: as for @dag.
    @task(task_id="train", retries=0)  # type: ignore[untyped-decorator]
    def train() -> None:
        """Run the training with the triggering run's ``conf``."""
        dag_run = get_current_context()["dag_run"]
        args, env = parse_conf(dag_run.conf)
        run_training(args, env)

    train()


flightdeck_retrain()
