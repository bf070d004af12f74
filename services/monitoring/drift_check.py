"""The on-demand drift check: an uploaded batch against a model's reference, off the page rerun.

Computing drift takes seconds to minutes (Evidently, see STACK.md), far too long for a page
rerun. :class:`DriftCheck` runs it in a background thread, started once per upload, and the page
polls its progress; :func:`save_as_monitoring_run` turns a finished check into a monitoring run,
as the monitoring job would have logged it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd

from services.core.errors import DriftError, FlightdeckError
from services.core.gateway import TrackingGateway
from services.core.store import Store
from services.governance import audit
from services.governance.auth import Action, Identity, require
from services.monitoring import runs as monitoring
from services.monitoring.drift import DriftResult, SchemaCheck
from services.monitoring.readers import TABLE_SUFFIXES, read_table_bytes
from services.monitoring.runs import MonitoringRun

MAX_UPLOAD_MB = 50
"""The largest file the check accepts, in megabytes (Streamlit's uploader enforces it too)."""
UPLOAD_TYPES = tuple(suffix.lstrip(".") for suffix in TABLE_SUFFIXES)
"""File types the check reads."""
MAX_CHECK_ROWS = 50_000
"""Rows sampled from each side before drift is computed."""
_SECONDS_PER_CELL = 1e-5
_BASE_SECONDS = 3.0

Compute = Callable[[], tuple[int, DriftResult]]
"""Reads the reference and computes drift: returns (reference version, result)."""


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """A finished check."""

    version: int
    """The model version whose reference sample the batch was compared with."""
    result: DriftResult
    """The drift summary, Evidently's snapshot and its (untrusted) HTML report."""


@dataclass
class DriftCheck:
    """Computes drift in a background thread; the page polls ``done`` and ``progress``.

    Safe to read from other threads: ``result`` and ``error`` are set before ``done``.
    """

    key: str
    """Identifies the upload and the model it is checked against; one check per key."""
    model: str
    """The registered model."""
    alias: str
    """The alias whose version's reference sample is compared."""
    compute: Compute
    """The work itself, e.g. :func:`services.monitoring.runs.run_check` bound to its arguments."""
    expected_s: float = 10.0
    """A rough estimate of how long the work takes, in seconds, for the progress bar."""
    done: bool = False
    """True once the work finished, well or not."""
    error: FlightdeckError | None = None
    """Why the check failed; None while running or after success."""
    result: CheckOutcome | None = None
    """The outcome, once done without error."""
    schema: SchemaCheck | None = None
    """The upload's columns against the reference's, when they were compared."""
    saved_run_id: str = ""
    """The monitoring run this check was saved as; empty until saved."""
    started_at: float | None = None
    """``time.monotonic()`` when the work started; None before."""
    finished_at: float | None = None
    """``time.monotonic()`` when the work ended; None before."""
    _thread: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def rejected(
        cls,
        key: str,
        model: str,
        alias: str,
        error: FlightdeckError,
        schema: SchemaCheck | None = None,
    ) -> DriftCheck:
        """A check that cannot run (unreadable file, wrong columns): done, with its reason."""
        check = cls(key, model, alias, compute=_never, schema=schema, error=error, done=True)
        check.started_at = check.finished_at = time.monotonic()
        return check

    def as_run(self) -> MonitoringRun | None:
        """The finished check as an unsaved batch (window: when it ran), for the status rules."""
        if self.result is None:
            return None
        summary = self.result.result.summary
        now = datetime.now(UTC)
        return MonitoringRun(
            run_id=self.saved_run_id,
            model=self.model,
            version=self.result.version,
            alias=self.alias,
            window_start=now,
            window_end=now,
            drift_share=summary.drift_share,
            drifted_columns=summary.drifted_columns,
            dataset_drift=summary.dataset_drift,
            scores={feature.column: feature.score for feature in summary.features},
        )

    def start(self) -> DriftCheck:
        """Start the work unless it already started (or was rejected); returns self."""
        if self._thread is None and not self.done:
            self.started_at = time.monotonic()
            self._thread = threading.Thread(
                target=self._run, name="flightdeck-drift-check", daemon=True
            )
            self._thread.start()
        return self

    def wait(self, timeout_s: float) -> bool:
        """Block until the work is done or ``timeout_s`` passed (for jobs and tests)."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.done

    @property
    def elapsed_s(self) -> float:
        """Seconds the work has run (or ran)."""
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at

    @property
    def progress(self) -> float:
        """0 to 1: elapsed time against the estimate, held below 1 until the work is done."""
        if self.done:
            return 1.0
        return min(0.95, self.elapsed_s / max(self.expected_s, 1.0))

    def _run(self) -> None:
        try:
            version, result = self.compute()
            self.result = CheckOutcome(version, result)
        except FlightdeckError as exc:
            self.error = exc
        except Exception as exc:  # a thread's failure must reach the page, never vanish
            self.error = DriftError(f"Drift could not be computed: {type(exc).__name__}: {exc}")
        finally:
            self.finished_at = time.monotonic()
            self.done = True


def _never() -> tuple[int, DriftResult]:
    raise DriftError("This check was rejected before it started.")


def expected_seconds(rows: int, columns: int, max_rows: int = MAX_CHECK_ROWS) -> float:
    """A rough duration of a drift computation, from the cost measured on 2 cores (STACK.md)."""
    return _BASE_SECONDS + min(rows, max_rows) * max(columns, 1) * _SECONDS_PER_CELL


def check_key(file_id: str, model: str, alias: str) -> str:
    """The key of one check: the same upload against the same model and alias is one check."""
    return f"{file_id}|{model}|{alias}"


def read_upload(name: str, content: bytes) -> pd.DataFrame:
    """An uploaded CSV or Parquet file as a table.

    Raises:
        DriftError: The file is too big, of another type, empty or malformed; the message
            says which.
    """
    if len(content) > MAX_UPLOAD_MB * 1024 * 1024:
        raise DriftError(
            f"{name} is {len(content) / 1024 / 1024:.0f} MB: the check takes files up to "
            f"{MAX_UPLOAD_MB} MB. Upload a sample of the batch."
        )
    return read_table_bytes(content, name)


def save_as_monitoring_run(
    gateway: TrackingGateway,
    store: Store,
    actor: Identity,
    check: DriftCheck,
    today: date | None = None,
) -> str:
    """Log a finished check as a monitoring run whose window is today; returns its run id.

    Idempotent under the check: saving the same check again returns the first run's id. The
    intent and the outcome are recorded in the audit log.

    Args:
        gateway: The MLflow gateway the run is logged through.
        store: The application store holding the audit log.
        actor: Who saves it; needs the operator role.
        check: A check that finished without error.
        today: The window's day (UTC); defaults to today.

    Raises:
        PermissionDenied: ``actor`` is not an operator.
        DriftError: The check has not finished, or failed.
        TrackingError: MLflow could not log the run.
    """
    require(actor, Action.CHECK_DRIFT)
    if check.saved_run_id:
        return check.saved_run_id
    if check.result is None:
        raise DriftError("This check has no result to save: wait for it to finish, or rerun it.")
    now = datetime.now(UTC)
    day = today or now.date()
    window_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    window_end = max(now, window_start)
    subject = audit.subject_for(check.model)
    summary = check.result.result.summary
    details = {
        "alias": check.alias,
        "version": check.result.version,
        "drift_share": summary.drift_share,
        "current_rows": summary.current_rows,
    }
    with audit.audited_write(
        store,
        actor=actor.name,
        subject=subject,
        intent="monitoring.check_saving",
        outcome="monitoring.check_saved",
        failure="monitoring.check_save_failed",
        details=details,
        failures=(FlightdeckError,),
    ) as write:
        run_id = monitoring.log_monitoring_run(
            gateway,
            model=check.model,
            version=check.result.version,
            alias=check.alias,
            window_start=window_start,
            window_end=window_end,
            result=check.result.result,
        )
        write.outcome["run_id"] = run_id
    check.saved_run_id = run_id
    return run_id
