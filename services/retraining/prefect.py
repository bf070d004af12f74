"""The ``prefect`` engine: each job is a flow run of a Prefect 3 deployment, over its REST API.

The deployment (``flightdeck-retrain/flightdeck-retrain`` by default, registered by
``make prefect-deploy`` from :mod:`jobs.prefect_flow`) runs ``python -m jobs.train`` on a
``process`` worker; Flightdeck sends it the training's arguments and extra environment as the
flow run's parameters, never a command, and never credentials: credential variables are left
out and URLs lose their ``user:password@`` (the worker's own environment carries credentials).
The reference is the flow run's id.

The dashboard does not import Prefect (it lives in its own venv, ``.engines/prefect``): this
module speaks HTTP with ``requests``. Prefect states map to Flightdeck's like this:

====================================  ============
Prefect state type                    Flightdeck
====================================  ============
SCHEDULED, PENDING, PAUSED            queued
RUNNING, CANCELLING                   running
COMPLETED                             succeeded
FAILED, CRASHED                       failed
CANCELLED                             cancelled
(the flow run no longer exists)       lost
====================================  ============

A failed run's exit code comes from its state message, ``jobs.train exited with code N: ...``,
which the flow writes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

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

STATE_MAP = {
    "SCHEDULED": QUEUED,
    "PENDING": QUEUED,
    "PAUSED": QUEUED,
    "RUNNING": RUNNING,
    "CANCELLING": RUNNING,
    "COMPLETED": SUCCEEDED,
    "FAILED": FAILED,
    "CRASHED": FAILED,
    "CANCELLED": CANCELLED,
}
"""Prefect state types and what Flightdeck calls them."""
LOG_PAGE = 200
"""Log records per request: Prefect refuses a ``limit`` above its default limit (200)."""
LOG_PAGES_MAX = 20
"""At most this many pages per :meth:`PrefectBackend.logs` call, whatever ``tail`` asks."""
TAGS = ("flightdeck", "retraining")
"""Tags on every flow run Flightdeck creates, to find them in Prefect's UI."""
_EXIT_CODE = re.compile(r"exited with code (-?\d+)")
_TRACEBACK = "Traceback (most recent call last):"
_NOT_STARTED = ("SCHEDULED",)
"""The state in which no worker has taken the run yet: a cancel ends it directly."""


class PrefectBackend:
    """Runs jobs as flow runs of a Prefect 3 deployment.

    Args:
        api_url: The Prefect server's API, e.g. ``http://127.0.0.1:4200/api``.
        deployment: The deployment's full name, ``<flow>/<deployment>``.
        timeout_s: Seconds to wait for each HTTP request.
        redactor: Masks credentials in the log lines :meth:`logs` returns.
    """

    name = "prefect"

    def __init__(
        self,
        api_url: str,
        deployment: str,
        timeout_s: float = 10.0,
        *,
        redactor: Redactor = NO_SECRETS,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.where = without_password(self.api_url)
        """The API URL as messages show it."""
        self.deployment = deployment
        self.timeout_s = timeout_s
        self.redactor = redactor

    def submit(self, job_id: str, command: Sequence[str], env: Mapping[str, str]) -> str:
        """Create a flow run of the deployment for ``job_id``; the reference is its id.

        The job id is the idempotency key: submitting the same job twice returns the first
        flow run rather than starting a second training.

        Raises:
            RetrainingError: ``command`` is not ``python -m jobs.train ...``, the deployment
                does not exist, or the server is unreachable or refused the run.
        """
        parameters = {"train_args": train_args(command), "env": engine_environment(env)}
        deployment_id = self._deployment_id()
        run = self._request(
            "POST",
            f"/deployments/{deployment_id}/create_flow_run",
            {
                "parameters": parameters,
                "idempotency_key": job_id,
                "name": f"flightdeck-{job_id[:12]}",
                "tags": list(TAGS),
            },
            doing=f"start job {job_id[:8]}",
        )
        return str(_json(run)["id"])

    def status(self, ref: str) -> EngineStatus:
        """The flow run's state; ``lost`` when Prefect no longer has it.

        Raises:
            RetrainingError: The server is unreachable or answered with an error.
        """
        response = self._request("GET", f"/flow_runs/{ref}", doing="read a flow run", ok=(404,))
        if response.status_code == 404:
            return EngineStatus(LOST)
        run = _json(response)
        state = run.get("state") or {}
        # A state type Prefect adds later is reported as running: still active, never lost.
        kind = STATE_MAP.get(str(state.get("type")), RUNNING)
        exit_code = 0 if kind == SUCCEEDED else None
        if kind == FAILED:
            found = _EXIT_CODE.search(str(state.get("message") or ""))
            exit_code = int(found.group(1)) if found else None
        # Prefect gives a run cancelled before it ran a start time too: only a run that ran
        # (run_count > 0) has started.
        started_at = _time(run.get("start_time")) if run.get("run_count") else None
        return EngineStatus(kind, exit_code, started_at, _time(run.get("end_time")))

    def logs(self, ref: str, tail: int = 200) -> str:
        """The last ``tail`` lines the flow run logged (the training's output, Prefect's notes).

        Python tracebacks Prefect logs are cut to their first and last lines; Prefect's UI has
        them in full. Lines arrive a second or two after they are printed.

        Raises:
            RetrainingError: The server is unreachable or answered with an error.
        """
        if tail <= 0:
            return ""
        lines: list[str] = []
        # Newest first, page by page, until there are enough lines: Prefect caps each page.
        for page in range(LOG_PAGES_MAX):
            response = self._request(
                "POST",
                "/logs/filter",
                {
                    "logs": {"flow_run_id": {"any_": [ref]}},
                    "sort": "TIMESTAMP_DESC",
                    "limit": LOG_PAGE,
                    "offset": page * LOG_PAGE,
                },
                doing="read a flow run's log",
            )
            records = _json(response)
            for record in records:
                lines[:0] = _lines(str(record.get("message", "")))
            if len(records) < LOG_PAGE or len(lines) >= tail:
                break
        return self.redactor.text("\n".join(lines[-tail:]))

    def cancel(self, ref: str) -> None:
        """Ask Prefect to cancel the flow run; its worker then stops the training.

        A run no worker has taken yet is cancelled at once; a running one goes to
        ``Cancelling`` until its worker has killed it. A run that already ended keeps its real
        outcome.

        Raises:
            RetrainingError: The server is unreachable, or has no such flow run.
        """
        response = self._request("GET", f"/flow_runs/{ref}", doing="read a flow run", ok=(404,))
        if response.status_code == 404:
            raise RetrainingError(
                f"The Prefect server at {self.where} has no flow run {ref}: it may have been "
                "deleted. Nothing was cancelled."
            )
        kind = str((_json(response).get("state") or {}).get("type"))
        if STATE_MAP.get(kind, RUNNING) not in (QUEUED, RUNNING) or kind == "CANCELLING":
            return
        state = (
            {"type": "CANCELLED", "name": "Cancelled"}
            if kind in _NOT_STARTED
            else {"type": "CANCELLING", "name": "Cancelling"}
        )
        # Not forced: Prefect then refuses to overwrite a state the run reached meanwhile
        # (it ended on its own), which is the outcome to keep.
        answer = _json(
            self._request(
                "POST",
                f"/flow_runs/{ref}/set_state",
                {"state": {**state, "message": "Cancelled from Flightdeck."}, "force": False},
                doing=f"cancel flow run {ref}",
            )
        )
        if answer.get("status") == "ACCEPT" or self.status(ref).state not in (QUEUED, RUNNING):
            return
        reason = (answer.get("details") or {}).get("reason") or answer.get("status")
        raise RetrainingError(
            f"The Prefect server at {self.where} would not cancel flow run {ref}: {reason}."
        )

    # -- HTTP --------------------------------------------------------------------------------

    def _deployment_id(self) -> str:
        flow, _, deployment = self.deployment.partition("/")
        if not flow or not deployment:
            raise RetrainingError(
                f"The Prefect deployment setting {self.deployment!r} is not <flow>/<deployment>, "
                "e.g. flightdeck-retrain/flightdeck-retrain."
            )
        response = self._request(
            "GET",
            f"/deployments/name/{flow}/{deployment}",
            doing="find the retraining deployment",
            ok=(404,),
        )
        if response.status_code == 404:
            raise RetrainingError(
                f"The Prefect server at {self.where} has no deployment {self.deployment!r}: "
                "register it with `make prefect-deploy` (and start a worker on the "
                "`flightdeck` pool), or fix FLIGHTDECK_PREFECT_DEPLOYMENT."
            )
        return str(_json(response)["id"])

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        doing: str,
        ok: tuple[int, ...] = (),
    ) -> requests.Response:
        """Send one request; statuses in ``ok`` are returned rather than raised."""
        url = self.api_url + path
        try:
            for pause in (*RETRY_PAUSES_S, None):
                response = requests.request(method, url, json=body, timeout=self.timeout_s)
                if response.status_code not in BUSY_STATUSES or pause is None:
                    break
                time.sleep(pause)  # a busy server (its SQLite locked): every call here may repeat
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetrainingError(
                f"The Prefect server at {self.where} is unreachable ({type(exc).__name__}), "
                f"so Flightdeck could not {doing}. Check that `prefect server start` runs there "
                "and that FLIGHTDECK_PREFECT_API_URL points at its /api."
            ) from exc
        except requests.RequestException as exc:
            raise RetrainingError(
                f"Could not {doing} on the Prefect server at {self.where}: {exc}"
            ) from exc
        if response.ok or response.status_code in ok:
            return response
        raise RetrainingError(
            f"The Prefect server at {self.where} refused to {doing}: HTTP "
            f"{response.status_code} {_detail(response)}"
        )


BUSY_STATUSES = (429, 503)
"""Prefect answers these when it is overloaded, e.g. while its database is locked."""
RETRY_PAUSES_S = (0.5, 1.0, 2.0)
"""Pauses before asking a busy server again (submits are idempotent by their key)."""


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise RetrainingError(
            f"The Prefect server answered {without_password(response.url)} with something that "
            "is not JSON: is FLIGHTDECK_PREFECT_API_URL the server's /api?"
        ) from exc


def _detail(response: requests.Response) -> str:
    """Prefect's own message (FastAPI's ``detail``), on one short line."""
    try:
        detail: Any = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    text = " ".join(str(detail).split()) or response.reason
    return text if len(text) <= 300 else text[:300] + "…"


def _lines(message: str) -> list[str]:
    """A log record's lines, with a traceback cut to its first and last lines."""
    lines = message.splitlines()
    if _TRACEBACK in lines:
        lines = [*lines[: lines.index(_TRACEBACK)], lines[-1]]
    return lines


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time from Prefect as an aware UTC datetime; None when absent."""
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
