"""The ``airflow`` engine: each job is a run of the DAG ``jobs/airflow_dag.py`` defines.

Flightdeck talks to Airflow 3's REST API (``/api/v2``) with ``requests``; it never imports
Airflow, which lives in its own venv or on other machines. Each job becomes one run of the
DAG ``flightdeck_retrain`` (:attr:`Settings.airflow_dag_id`) whose ``conf`` carries the
arguments of ``python -m jobs.train`` and the extra environment::

    {"train_args": ["--model", "wine-classifier", ...], "env": {"FLIGHTDECK_JOB_ID": "..."}}

The conf is stored by Airflow and shown to everyone who may read the DAG's runs, so ``env`` never
carries secrets: credential variables are left out and URLs lose their ``user:password@`` (give
the workers their MLflow credentials in their own environment).

The reference is ``<dag_id>/<dag_run_id>`` with the run id ``flightdeck__<job_id>``: Flightdeck
picks it, so submitting the same job twice (a retry after a timeout) finds the first run
rather than starting a second one.

Airflow has no "cancelled" run state: a cancel marks the run ``failed`` (Airflow then kills the
running task, and with it the training) and sets the run's note to :data:`CANCEL_NOTE`; a
failed run carrying that note reads as ``cancelled``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests

from services.core.errors import RetrainingError
from services.core.redaction import NO_SECRETS, Redactor, engine_environment, without_password
from services.retraining.base import (
    CANCELLED,
    FAILED,
    LOST,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    EngineStatus,
    train_args,
)

RUN_ID_PREFIX = "flightdeck__"
"""Dag run ids Flightdeck creates: this prefix and the job id."""
CANCEL_NOTE = "Cancelled from Flightdeck."
"""The note a cancel sets on the dag run; a failed run with this note is ``cancelled``."""
AIRFLOW_STATES = {"queued": QUEUED, "running": RUNNING, "success": SUCCEEDED, "failed": FAILED}
"""Airflow's dag run states and Flightdeck's names for them."""
TRAIN_LOGGER = "flightdeck.train"
"""The logger ``jobs/airflow_dag.py`` writes the training's output with."""
_EXIT_CODE = re.compile(r"exited with code (-?\d+)")
_MESSAGE_CHARS = 300


class AirflowBackend:
    """Runs jobs as runs of an Airflow 3 DAG, over Airflow's REST API.

    Args:
        base_url: The Airflow API server, e.g. ``http://127.0.0.1:8080``.
        dag_id: The DAG ``jobs/airflow_dag.py`` defines (``flightdeck_retrain``).
        username: Airflow user for ``/auth/token``; None for an Airflow without logins.
        password: That user's password.
        timeout_s: Seconds to wait for each HTTP request.
        session: The HTTP session; injectable for tests.
        redactor: Masks credentials in the log lines :meth:`logs` returns.
    """

    name = "airflow"

    def __init__(
        self,
        base_url: str,
        dag_id: str,
        username: str | None,
        password: str | None,
        timeout_s: float = 10.0,
        *,
        session: requests.Session | None = None,
        redactor: Redactor = NO_SECRETS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.where = without_password(self.base_url)
        """The API URL as messages show it."""
        self.redactor = redactor
        self.dag_id = dag_id
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        self._http = session or requests.Session()
        self._token: str | None = None

    # -- the Backend protocol ------------------------------------------------------------------

    def submit(self, job_id: str, command: Sequence[str], env: Mapping[str, str]) -> str:
        """Trigger a run of the DAG for ``job_id``; the reference is ``<dag_id>/<run_id>``.

        Raises:
            RetrainingError: ``command`` is not ``python -m jobs.train ...``; Airflow is
                unreachable, refuses the credentials, or has no such DAG; or it refused the run.
        """
        conf = {"train_args": train_args(command), "env": engine_environment(env)}
        dag = self._call("GET", self._dag_path(self.dag_id), missing_ok=True)
        if dag is None:
            raise RetrainingError(
                f"Airflow at {self.where} has no DAG {self.dag_id!r}: put "
                "jobs/airflow_dag.py in its DAGs folder (see that file's docstring), wait for "
                "Airflow to parse it, and check that FLIGHTDECK_AIRFLOW_DAG_ID names it."
            )
        if dag.get("is_paused"):  # new DAGs start paused, and a paused DAG queues runs forever
            self._call("PATCH", self._dag_path(self.dag_id), json={"is_paused": False})
        run_id = f"{RUN_ID_PREFIX}{job_id}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        self._call("POST", self._dag_path(self.dag_id) + "/dagRuns", json=body, conflict_ok=True)
        # A 409 means this job's run exists already (a retry): it is the same run either way.
        return f"{self.dag_id}/{run_id}"

    def status(self, ref: str) -> EngineStatus:
        """The dag run's state; ``lost`` when Airflow no longer has it.

        Raises:
            RetrainingError: Airflow is unreachable or refused the request.
        """
        dag_id, run_id = _parse_ref(ref)
        run = self._call("GET", self._run_path(dag_id, run_id), missing_ok=True)
        if run is None:
            return EngineStatus(LOST)
        state = AIRFLOW_STATES.get(str(run.get("state")), RUNNING)
        started_at = _timestamp(run.get("start_date"))
        ended_at = _timestamp(run.get("end_date")) if state in (SUCCEEDED, FAILED) else None
        if state == SUCCEEDED:
            return EngineStatus(SUCCEEDED, 0, started_at, ended_at)
        if state == FAILED:
            state = CANCELLED if run.get("note") == CANCEL_NOTE else FAILED
            return EngineStatus(state, self._exit_code(dag_id, run_id), started_at, ended_at)
        return EngineStatus(state, None, started_at, None)

    def logs(self, ref: str, tail: int = 200) -> str:
        """The last ``tail`` lines the training printed, and the errors Airflow logged.

        Airflow's own progress lines (parsing the DAG, task start) are left out, so this reads
        like the local engine's log; empty before the task started.

        Raises:
            RetrainingError: Airflow is unreachable or refused the request.
        """
        if tail <= 0:
            return ""
        dag_id, run_id = _parse_ref(ref)
        lines = list(self._log_lines(dag_id, run_id))
        return self.redactor.text("\n".join(lines[-tail:]))

    def cancel(self, ref: str) -> None:
        """Mark the dag run failed with :data:`CANCEL_NOTE`; Airflow kills its running task.

        A run that already ended keeps its outcome; a run Airflow no longer has is left alone.

        Raises:
            RetrainingError: Airflow is unreachable or refused the request.
        """
        dag_id, run_id = _parse_ref(ref)
        run = self._call("GET", self._run_path(dag_id, run_id), missing_ok=True)
        if run is None or run.get("state") not in ("queued", "running"):
            return
        # One PATCH: Airflow applies the note before the state, so nobody sees the run failed
        # without the marker that says it was a cancel.
        self._call(
            "PATCH",
            self._run_path(dag_id, run_id),
            json={"note": CANCEL_NOTE, "state": "failed"},
        )

    # -- helpers -------------------------------------------------------------------------------

    def _exit_code(self, dag_id: str, run_id: str) -> int | None:
        """The training's exit code, from the DAG's ``exited with code N`` error; None if absent."""
        for line in reversed(list(self._log_lines(dag_id, run_id))):
            found = _EXIT_CODE.search(line)
            if found:
                return int(found.group(1))
        return None

    def _log_lines(self, dag_id: str, run_id: str) -> Iterator[str]:
        listing = self._call(
            "GET", self._run_path(dag_id, run_id) + "/taskInstances", missing_ok=True
        )
        instances = (listing or {}).get("task_instances") or []
        instances.sort(key=lambda ti: (ti.get("start_date") or "", ti.get("task_id") or ""))
        for instance in instances:
            task_id, tries = str(instance.get("task_id")), int(instance.get("try_number") or 0)
            for try_number in range(1, tries + 1):
                path = f"{self._run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}"
                log = self._call(
                    "GET",
                    f"{path}/logs/{try_number}",
                    params={"full_content": "true"},
                    missing_ok=True,
                )
                for event in (log or {}).get("content") or []:
                    line = _log_line(event)
                    if line is not None:
                        yield line

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        missing_ok: bool = False,
        conflict_ok: bool = False,
    ) -> dict[str, Any] | None:
        """One API request with a bearer token; its JSON body, or None for an allowed 404/409.

        A rejected token is replaced once: tokens expire, and a restarted Airflow may sign them
        with a new secret.
        """
        fresh = self._token is None
        response = self._send(method, path, json, params)
        if response.status_code in (401, 403) and not fresh and self._credentials:
            self._token = None
            response = self._send(method, path, json, params)
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code == 409 and conflict_ok:
            return None
        if response.status_code == 401:
            raise RetrainingError(
                f"Airflow at {self.where} wants a login: set FLIGHTDECK_AIRFLOW_USERNAME "
                f"and FLIGHTDECK_AIRFLOW_PASSWORD ({_short_message(response)})."
            )
        if response.status_code == 403:
            raise RetrainingError(
                f"Airflow user {self.username!r} may not {method} {path}: give it a role that "
                f"may trigger and edit runs of {self.dag_id} ({_short_message(response)})."
            )
        if not response.ok:
            raise RetrainingError(
                f"Airflow at {self.where} refused {method} {path}: HTTP "
                f"{response.status_code}, {_short_message(response)}."
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise RetrainingError(
                f"{self.where} answered {method} {path} with something that is not Airflow's "
                "API: check FLIGHTDECK_AIRFLOW_URL."
            ) from exc
        return body if isinstance(body, dict) else {}

    @property
    def _credentials(self) -> bool:
        return self.username is not None and self.password is not None

    def _send(
        self, method: str, path: str, json: Any, params: Mapping[str, str] | None
    ) -> requests.Response:
        headers = {"Accept": "application/json"}
        if self._credentials:
            headers["Authorization"] = f"Bearer {self._bearer()}"
        return self._request(method, path, json=json, params=params, headers=headers)

    def _bearer(self) -> str:
        """A JWT from ``POST /auth/token``, cached until Airflow rejects it."""
        if self._token is not None:
            return self._token
        response = self._request(
            "POST", "/auth/token", json={"username": self.username, "password": self.password}
        )
        if response.status_code in (401, 403):
            raise RetrainingError(
                f"Airflow at {self.where} rejected the credentials of user {self.username!r}"
                f" ({_short_message(response)}): check FLIGHTDECK_AIRFLOW_USERNAME and "
                "FLIGHTDECK_AIRFLOW_PASSWORD."
            )
        try:
            token = response.json()["access_token"] if response.ok else None
        except (ValueError, KeyError, TypeError):
            token = None
        if not isinstance(token, str):
            raise RetrainingError(
                f"Airflow at {self.where} gave no token for user {self.username!r}: HTTP "
                f"{response.status_code}, {_short_message(response)}. Check that "
                "FLIGHTDECK_AIRFLOW_URL points at an Airflow 3 API server."
            )
        self._token = token
        return token

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.base_url + path
        try:
            return self._http.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            what = (
                "did not answer in time" if isinstance(exc, requests.Timeout) else "is unreachable"
            )
            raise RetrainingError(
                f"The Airflow API at {self.where} {what} ({type(exc).__name__}): check that "
                "Airflow's API server runs and that FLIGHTDECK_AIRFLOW_URL points at it."
            ) from exc

    @staticmethod
    def _dag_path(dag_id: str) -> str:
        return f"/api/v2/dags/{quote(dag_id, safe='')}"

    def _run_path(self, dag_id: str, run_id: str) -> str:
        return f"{self._dag_path(dag_id)}/dagRuns/{quote(run_id, safe='')}"


def _parse_ref(ref: str) -> tuple[str, str]:
    dag_id, _, run_id = ref.partition("/")
    if not dag_id or not run_id:
        raise RetrainingError(f"{ref!r} is not an Airflow job reference (<dag_id>/<run_id>).")
    return dag_id, run_id


def _log_line(event: Any) -> str | None:
    """One line of the job's log from one of Airflow 3's structured log events, or None.

    Keeps what the training printed and the errors (a failed or killed task); leaves out the
    rest of Airflow's own chatter.
    """
    if not isinstance(event, dict):
        return str(event)
    text = str(event.get("event", ""))
    if event.get("logger") == TRAIN_LOGGER:
        return text
    if event.get("level") not in ("error", "critical"):
        return None
    details = event.get("error_detail")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        text = f"{text}: {details[0].get('exc_type')}: {details[0].get('exc_value')}"
    return text


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _short_message(response: requests.Response) -> str:
    """Airflow's ``detail`` (a string, a dict, or a list of validation errors), shortened."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = response.text
    if isinstance(detail, dict):
        detail = detail.get("reason") or detail.get("message") or detail
    elif isinstance(detail, list):
        detail = "; ".join(
            str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail
        )
    text = " ".join(str(detail or response.reason or "no message").split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"
