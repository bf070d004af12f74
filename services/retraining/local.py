"""The ``local`` engine: each job is a detached subprocess with its state in a job folder.

``<jobs_dir>/<job_id>/`` holds:

- ``log.txt``: the command's stdout and stderr;
- ``pid``: the wrapper's pid and its start time (``/proc/<pid>/stat`` field 22, clock ticks
  since boot), so a pid the kernel reused for another process is not taken for the job;
- ``exit_code``: written atomically by :mod:`services.retraining.wrapper` when the command ends;
- ``cancelled``: written before a cancel signals the job.

The job runs in its own session (process group), so it outlives the dashboard, and a cancel
reaches the command and everything it started. The reference is the job id. A process that is
gone, a zombie, or a pid with another start time is dead; dead without an exit code is ``lost``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from services.core.errors import RetrainingError
from services.core.redaction import NO_SECRETS, Redactor
from services.core.settings import PROJECT_ROOT
from services.retraining.base import CANCELLED, FAILED, LOST, RUNNING, SUCCEEDED, EngineStatus

LOG_FILE, PID_FILE, EXIT_FILE, CANCEL_FILE = "log.txt", "pid", "exit_code", "cancelled"
CANCEL_GRACE_S = 10.0
"""How long a cancelled job may take to stop after SIGTERM before it gets SIGKILL."""
LOG_TAIL_BYTES = 1024 * 1024
"""How much of the end of a log :meth:`LocalBackend.logs` reads, at most."""
KILL_WAIT_S = 5.0
"""How long to wait for the killed processes to be gone (SIGKILL takes effect asynchronously)."""
_POLL_S = 0.05


class LocalBackend:
    """Runs jobs as detached subprocesses on this machine.

    Args:
        jobs_dir: Where job folders go, normally ``<data_dir>/jobs``.
        cwd: The working directory of jobs; the project root by default (for ``python -m``).
        grace_s: Seconds between SIGTERM and SIGKILL on cancel.
        redactor: Masks credentials in the log lines :meth:`logs` returns.
    """

    name = "local"

    def __init__(
        self,
        jobs_dir: Path,
        *,
        cwd: Path = PROJECT_ROOT,
        grace_s: float = CANCEL_GRACE_S,
        redactor: Redactor = NO_SECRETS,
    ) -> None:
        self.jobs_dir = jobs_dir
        self.cwd = cwd
        self.grace_s = grace_s
        self.redactor = redactor

    def submit(self, job_id: str, command: Sequence[str], env: Mapping[str, str]) -> str:
        """Start ``command`` detached; the reference is ``job_id``.

        Raises:
            RetrainingError: The job folder exists already, or the process could not start.
        """
        if not command:
            raise RetrainingError(f"Job {job_id}: there is no command to run.")
        folder = self._folder(job_id)
        try:
            folder.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise RetrainingError(
                f"Cannot create the job folder {folder}: {exc}. Check that the data folder is "
                "writable and that the job id is new."
            ) from exc
        wrapper = [sys.executable, "-m", "services.retraining.wrapper", str(folder / EXIT_FILE)]
        try:
            with (folder / LOG_FILE).open("ab") as log:
                process = subprocess.Popen(
                    [*wrapper, "--", *command],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd,
                    env={**os.environ, **env},
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            raise RetrainingError(f"Cannot start job {job_id} on this machine: {exc}.") from exc
        started = process_start_time(process.pid)
        _write_atomically(folder / PID_FILE, f"{process.pid} {started or 0}\n")
        process.returncode = 0  # nobody waits on it here: keep Popen from warning or reaping it
        return job_id

    def status(self, ref: str) -> EngineStatus:
        """The job's state from its folder and /proc (see the module docstring)."""
        folder = self._folder(ref)
        pid_path = folder / PID_FILE
        started_at = _mtime(pid_path)
        code = _exit_code(folder)
        if code is None:
            pid, start = _read_pid(pid_path)
            if pid is not None:
                _reap(pid, start)
                if process_alive(pid, start):
                    return EngineStatus(RUNNING, None, started_at, None)
            code = _exit_code(folder)  # it may have ended between the two reads
        cancelled = (folder / CANCEL_FILE).exists()
        if code is None:
            ended_at = _mtime(folder / CANCEL_FILE) if cancelled else None
            return EngineStatus(CANCELLED if cancelled else LOST, None, started_at, ended_at)
        state = CANCELLED if cancelled else SUCCEEDED if code == 0 else FAILED
        return EngineStatus(state, code, started_at, _mtime(folder / EXIT_FILE))

    def logs(self, ref: str, tail: int = 200) -> str:
        """The last ``tail`` lines of ``log.txt`` (empty when there is none yet), redacted."""
        if tail <= 0:
            return ""
        try:
            with (self._folder(ref) / LOG_FILE).open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - LOG_TAIL_BYTES))
                data = log.read()
        except FileNotFoundError:
            return ""
        lines = data.decode("utf-8", errors="replace").splitlines()
        if len(data) < size:
            lines = lines[1:]  # the first line read may be cut
        return self.redactor.text("\n".join(lines[-tail:]))

    def cancel(self, ref: str) -> None:
        """Mark the job cancelled, SIGTERM its process group, SIGKILL after the grace period."""
        folder = self._folder(ref)
        if not folder.is_dir():
            raise RetrainingError(f"There is no local job {ref!r} in {self.jobs_dir}.")
        if _exit_code(folder) is not None:
            return  # it ended on its own: keep its real outcome
        _write_atomically(folder / CANCEL_FILE, datetime.now(UTC).isoformat() + "\n")
        pid, start = _read_pid(folder / PID_FILE)
        if pid is None or not process_alive(pid, start):
            return
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            _reap(pid, start)
            if not process_alive(pid, start):
                break
            time.sleep(_POLL_S)
        _signal_group(pid, signal.SIGKILL)  # whatever is left in the group, the wrapper included
        deadline = time.monotonic() + KILL_WAIT_S
        while _group_exists(pid) and time.monotonic() < deadline:
            _reap(pid, start)
            time.sleep(_POLL_S)

    def folder(self, ref: str) -> Path:
        """The job folder of ``ref``."""
        return self._folder(ref)

    def _folder(self, ref: str) -> Path:
        if not ref or "/" in ref or ref in {".", ".."}:
            raise RetrainingError(f"{ref!r} is not a local job reference.")
        return self.jobs_dir / ref


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot), or None when there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def process_alive(pid: int, start_time: int | None) -> bool:
    """True when ``pid`` runs, is not a zombie, and (if given) started at ``start_time``."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in {"Z", "X", "x"}:
        return False
    return start_time is None or int(fields[19]) == start_time


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3 onwards of ``/proc/<pid>/stat`` (after the command name, which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _reap(pid: int, start_time: int | None) -> None:
    """Collect the job's process if it is our own finished child, so it does not linger as a
    zombie; a reused pid (another start time) is left alone."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] != "Z" or int(fields[19]) != start_time:
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> tuple[int | None, int | None]:
    try:
        pid_text, _, start_text = path.read_text(encoding="utf-8").strip().partition(" ")
        return int(pid_text), (int(start_text) or None) if start_text else None
    except (FileNotFoundError, ValueError):
        return None, None


def _exit_code(folder: Path) -> int | None:
    try:
        return int((folder / EXIT_FILE).read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
