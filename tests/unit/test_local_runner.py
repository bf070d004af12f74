"""The local retraining engine with real subprocesses: outcomes, logs, cancel, kill -9, pids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.retraining.base import EngineStatus
from services.retraining.local import (
    PID_FILE,
    LocalBackend,
    process_alive,
    process_start_time,
)

pytestmark = pytest.mark.unit

FAILING = [sys.executable, "-c", "print('hi'); import sys; sys.exit(3)"]
SLEEPING = [sys.executable, "-c", "import time; print('sleeping', flush=True); time.sleep(60)"]


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "jobs", grace_s=2.0)


def wait_finished(backend: LocalBackend, ref: str, timeout: float = 30.0) -> EngineStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.status(ref)
        if status.state != "running":
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {ref} still running after {timeout} s")


def wait_for_log(backend: LocalBackend, ref: str, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in backend.logs(ref) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert text in backend.logs(ref)


def job_pid(backend: LocalBackend, ref: str) -> int:
    return int((backend.folder(ref) / PID_FILE).read_text().split()[0])


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_command_exiting_zero_succeeds_with_its_log(backend: LocalBackend) -> None:
    ref = backend.submit("job-ok", [sys.executable, "-c", "print('trained')"], {})

    status = wait_finished(backend, ref)

    assert (status.state, status.exit_code) == ("succeeded", 0)
    assert status.started_at is not None and status.ended_at is not None
    assert "trained" in backend.logs(ref)


def test_command_exiting_three_fails_with_the_code_and_log_tail(backend: LocalBackend) -> None:
    ref = backend.submit("job-fail", FAILING, {})

    status = wait_finished(backend, ref)

    assert (status.state, status.exit_code) == ("failed", 3)
    assert backend.logs(ref, tail=1) == "hi"


def test_environment_reaches_the_command(backend: LocalBackend) -> None:
    command = [sys.executable, "-c", "import os; print(os.environ['FLIGHTDECK_JOB_ID'])"]
    ref = backend.submit("job-env", command, {"FLIGHTDECK_JOB_ID": "job-env"})

    assert wait_finished(backend, ref).state == "succeeded"
    assert backend.logs(ref) == "job-env"


def test_cancel_stops_the_whole_process_group_and_marks_cancelled(backend: LocalBackend) -> None:
    ref = backend.submit("job-cancel", SLEEPING, {})
    wait_for_log(backend, ref, "sleeping")
    pid = job_pid(backend, ref)
    assert backend.status(ref).state == "running"

    backend.cancel(ref)

    assert backend.status(ref).state == "cancelled"
    assert not group_exists(pid)


def test_killed_wrapper_and_child_without_exit_code_is_lost(backend: LocalBackend) -> None:
    ref = backend.submit("job-kill", SLEEPING, {})
    wait_for_log(backend, ref, "sleeping")

    os.killpg(job_pid(backend, ref), signal.SIGKILL)

    status = wait_finished(backend, ref)
    assert (status.state, status.exit_code) == ("lost", None)


def test_reused_pid_with_another_start_time_is_not_alive() -> None:
    own_start = process_start_time(os.getpid())
    assert own_start is not None

    assert process_alive(os.getpid(), own_start)
    assert not process_alive(os.getpid(), own_start + 1)


def test_pid_file_naming_a_reused_pid_reads_as_lost(backend: LocalBackend) -> None:
    ref = backend.submit("job-reused", [sys.executable, "-c", "pass"], {})
    wait_finished(backend, ref)
    folder = backend.folder(ref)
    (folder / "exit_code").unlink()
    start = process_start_time(os.getpid())
    assert start is not None
    (folder / PID_FILE).write_text(f"{os.getpid()} {start + 1}\n")

    assert backend.status(ref).state == "lost"


def test_zombie_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start_time(child.pid)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.02)
    try:
        assert not process_alive(child.pid, start)
        assert not process_alive(child.pid, None)
    finally:
        child.wait()


def test_unknown_pid_is_not_alive() -> None:
    assert not process_alive(2**22 + 7, None)


def test_cancel_after_the_job_ended_keeps_its_real_outcome(backend: LocalBackend) -> None:
    ref = backend.submit("job-late-cancel", FAILING, {})
    wait_finished(backend, ref)

    backend.cancel(ref)

    assert (backend.status(ref).state, backend.status(ref).exit_code) == ("failed", 3)


def test_command_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "jobs", grace_s=0.5)
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)",
    ]
    ref = backend.submit("job-stubborn", stubborn, {})
    wait_for_log(backend, ref, "ready")
    pid = job_pid(backend, ref)

    backend.cancel(ref)

    assert backend.status(ref).state == "cancelled"
    assert not group_exists(pid)


def test_log_tail_returns_the_last_lines_of_a_long_log(backend: LocalBackend) -> None:
    command = [sys.executable, "-c", "for i in range(50000): print(f'line {i}')"]
    ref = backend.submit("job-long-log", command, {})
    wait_finished(backend, ref)

    assert backend.logs(ref, tail=2) == "line 49998\nline 49999"


def test_missing_program_fails_with_127_and_says_why(backend: LocalBackend, tmp_path: Path) -> None:
    ref = backend.submit("job-missing", [str(tmp_path / "no-such-program")], {})

    status = wait_finished(backend, ref)

    assert (status.state, status.exit_code) == ("failed", 127)
    assert "Cannot start" in backend.logs(ref)
