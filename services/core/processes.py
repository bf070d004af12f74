"""Start and stop the local servers Flightdeck runs: the embedded MLflow server and the dashboard.

Used by ``make run`` (``jobs.run``), the test fixtures and the benchmarks, so all three start
servers the same way. Every server listens on loopback only (a test may serve the dashboard
elsewhere to prove it then refuses) and runs in its own process group, so stopping it also
stops its workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from services.core.settings import CREDENTIAL_VARIABLES, EMBEDDED_HOST, PROJECT_ROOT

MLFLOW_STARTUP_TIMEOUT_S = 90.0
"""A fresh SQLite store takes about 13 s to migrate on 2 cores; leave room for a busy machine."""
DASHBOARD_STARTUP_TIMEOUT_S = 60.0
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
"""Flags for Debian's headless chromium (tests, bench): this machine allows no other traffic."""


@dataclass
class ServerProcess:
    """A server we started, and where it answers."""

    name: str
    """What it is, for messages ("MLflow", "dashboard")."""
    url: str
    """Its base URL on loopback."""
    process: subprocess.Popen[bytes]
    """The process-group leader."""
    log_path: Path
    """Where its output goes."""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the whole process group: SIGINT, then SIGTERM, then SIGKILL."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                continue
        # Workers can outlive the leader for a moment; make sure the group is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((EMBEDDED_HOST, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """True when something already listens on this loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((EMBEDDED_HOST, port)) == 0


EMBEDDED_WEBHOOK_ENV = {
    # The embedded server and the control loop's webhook receiver are both on loopback.
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    # One delivery thread keeps deliveries in the order of the changes; a short cache lets a
    # restarted control loop's new subscription take effect within seconds.
    "MLFLOW_WEBHOOK_DELIVERY_MAX_WORKERS": "1",
    "MLFLOW_WEBHOOK_CACHE_TTL": "2",
}
"""The embedded MLflow server's settings for registry webhooks."""


def start_mlflow_server(
    data_dir: Path,
    port: int,
    log_path: Path | None = None,
    app_name: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start ``mlflow server`` on a SQLite store and served artifacts under ``data_dir``.

    Returns once ``/health`` answers.

    Args:
        data_dir: Holds ``mlflow.db`` and ``artifacts/``; created if missing.
        port: The loopback port to listen on.
        log_path: Where the server's output goes; ``data_dir/mlflow-server.log`` by default.
        app_name: An MLflow server app, e.g. ``basic-auth`` for a server with logins.
        extra_env: More variables for the server, e.g. its admin password.

    Raises:
        RuntimeError: The server exited or did not become healthy in time; the message
            holds the end of its log.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_path or data_dir / "mlflow-server.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{data_dir / 'mlflow.db'}",
        "--artifacts-destination",
        str(data_dir / "artifacts"),
        "--host",
        EMBEDDED_HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        *(["--app-name", app_name] if app_name else []),
    ]
    # Job execution would add 8 processes and 2 GB that Flightdeck does not use.
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **EMBEDDED_WEBHOOK_ENV,
        **(extra_env or {}),
    }
    for client_variable in ("MLFLOW_TRACKING_URI", *CREDENTIAL_VARIABLES):
        env.pop(client_variable, None)
    server = _spawn("MLflow", f"http://{EMBEDDED_HOST}:{port}", command, env, log_path)
    _wait_until_healthy(server, "/health", MLFLOW_STARTUP_TIMEOUT_S)
    return server


def start_dashboard(
    port: int,
    env: dict[str, str],
    log_path: Path,
    *,
    address: str = EMBEDDED_HOST,
    secrets_file: Path | None = None,
) -> ServerProcess:
    """Serve ``app.py`` with Streamlit, on loopback unless told otherwise; returns once it
    answers (on loopback, which every address but a single other interface includes).

    Args:
        port: The port to serve on.
        env: The full environment for the dashboard (tracking URI, timeouts, ...).
        log_path: Where Streamlit's output goes.
        address: Streamlit's ``server.address``; another one than loopback only for tests that
            prove the dashboard refuses to serve there without a login.
        secrets_file: A secrets file to use instead of ``.streamlit/secrets.toml`` (Streamlit's
            ``secrets.files``), e.g. a test's ``[auth]`` section.
    """
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(PROJECT_ROOT / "app.py"),
        "--server.headless",
        "true",
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        *(["--secrets.files", str(secrets_file)] if secrets_file else []),
    ]
    server = _spawn("dashboard", f"http://{EMBEDDED_HOST}:{port}", command, env, log_path)
    _wait_until_healthy(server, "/_stcore/health", DASHBOARD_STARTUP_TIMEOUT_S)
    return server


def start_scheduler(
    env: dict[str, str], log_path: Path, interval_s: float | None = None
) -> ServerProcess:
    """Run the control loop, ``python -m jobs.scheduler``, in the background."""
    command = [sys.executable, "-m", "jobs.scheduler"]
    if interval_s is not None:
        command += ["--interval", str(interval_s)]
    return _spawn("scheduler", "", command, env, log_path)


def _spawn(
    name: str, url: str, command: list[str], env: dict[str, str], log_path: Path
) -> ServerProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return ServerProcess(name=name, url=url, process=process, log_path=log_path)


def _wait_until_healthy(server: ServerProcess, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"The {server.name} server exited with code {server.process.returncode}.\n"
                f"Last lines of {server.log_path}:\n{_tail(server.log_path)}"
            )
        try:
            if requests.get(server.url + path, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(
        f"The {server.name} server did not answer {path} within {timeout_s:.0f} s.\n"
        f"Last lines of {server.log_path}:\n{_tail(server.log_path)}"
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
