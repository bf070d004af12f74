"""The interface every retraining engine implements, and what it reports about a run.

An engine starts a command somewhere (a local subprocess, a Prefect flow run, an Airflow DAG
run) and hands back its own reference to it; everything after that goes through the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.core.errors import RetrainingError

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, LOST = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "lost",
)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, LOST)
"""Every state an engine may report."""
ACTIVE_STATES = (QUEUED, RUNNING)
"""States of a run that has not finished: they hold the per-model lock."""
FINISHED_STATES = (SUCCEEDED, FAILED, CANCELLED, LOST)
"""States a run never leaves."""


TRAIN_MODULE = "jobs.train"
"""The training job every engine runs; remote engines accept only its arguments."""


def train_args(command: Sequence[str]) -> list[str]:
    """The arguments of a ``python -m jobs.train ...`` command.

    Remote engines (Prefect, Airflow) run the training on their own workers with the project's
    Python, so they are sent these arguments rather than a command line: a flow or DAG that
    accepted any command would run whatever its caller sends.

    Raises:
        RetrainingError: ``command`` is not ``<python> -m jobs.train ...``.
    """
    if len(command) < 3 or list(command[1:3]) != ["-m", TRAIN_MODULE]:
        raise RetrainingError(
            f"Remote engines run only `python -m {TRAIN_MODULE}`, not {' '.join(command)!r}."
        )
    return list(command[3:])


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """What an engine knows about one of its runs."""

    state: str
    """One of :data:`STATES`; ``lost`` when the run is gone without an outcome."""
    exit_code: int | None = None
    """The command's exit code once it ended; negative for a signal (POSIX); None if unknown."""
    started_at: datetime | None = None
    """When the run started (aware, UTC); None while queued or when unknown."""
    ended_at: datetime | None = None
    """When it ended (aware, UTC); None while active or when unknown."""


class Backend(Protocol):
    """A retraining engine: starts a command, reports on it, shows its log, stops it."""

    name: str
    """The engine's name as stored on each job, e.g. ``local``."""

    def submit(self, job_id: str, command: Sequence[str], env: Mapping[str, str]) -> str:
        """Start ``command`` for ``job_id`` with ``env`` added; return the engine's reference.

        Raises:
            RetrainingError: The engine could not start it (unreachable, refused).
        """
        ...

    def status(self, ref: str) -> EngineStatus:
        """The run's state now."""
        ...

    def logs(self, ref: str, tail: int = 200) -> str:
        """The last ``tail`` lines of the run's output (stdout and stderr together)."""
        ...

    def cancel(self, ref: str) -> None:
        """Stop the run; afterwards :meth:`status` reports ``cancelled`` (or its real end).

        Raises:
            RetrainingError: The engine could not be asked to stop it.
        """
        ...
