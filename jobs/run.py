"""Start Flightdeck for ``make run``: the embedded MLflow server (unless ``MLFLOW_TRACKING_URI``
points at another), demo data on first start, the dashboard and the retraining scheduler.
Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

from services.core.errors import FlightdeckError
from services.core.processes import (
    ServerProcess,
    free_port,
    port_in_use,
    start_dashboard,
    start_mlflow_server,
    start_scheduler,
)
from services.core.settings import Settings, load_settings, mlflow_client_environment

SEEDED_MARKER = "demo-seeded"


def main() -> int:
    try:
        settings = load_settings()
    except FlightdeckError as exc:
        print(f"Flightdeck cannot start: {exc}", file=sys.stderr)
        return 2
    # Installed explicitly: a shell may start us with SIGINT ignored (e.g. in the background).
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _stop_on_signal)
    servers: list[ServerProcess] = []
    try:
        if settings.embedded:
            servers.append(_start_embedded_mlflow(settings))
        else:
            print(f"Using the MLflow tracking server at {settings.tracking_uri}")
        if port_in_use(settings.dashboard_port):
            print(
                f"Port {settings.dashboard_port} is already in use. Stop what runs there, or "
                "set FLIGHTDECK_PORT to another port.",
                file=sys.stderr,
            )
            return 1
        dashboard_env = dashboard_environment(settings, os.environ)
        print("Starting the dashboard…", flush=True)
        servers.append(
            start_dashboard(
                settings.dashboard_port, dashboard_env, settings.data_dir / "dashboard.log"
            )
        )
        loop_env = dict(dashboard_env)
        if settings.embedded:  # the embedded server may post registry webhooks to the loop
            loop_env.setdefault("FLIGHTDECK_REGISTRY_WEBHOOK_PORT", str(free_port()))
        servers.append(start_scheduler(loop_env, settings.data_dir / "scheduler.log"))
        print(
            f"\n  MLflow     {settings.tracking_uri}\n  Flightdeck {servers[-2].url}\n"
            f"\nLogs are in {settings.data_dir}. Press Ctrl-C to stop.\n",
            flush=True,
        )
        return _watch(servers)
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"Flightdeck could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in reversed(servers):
            server.stop()


def dashboard_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The dashboard's environment: the MLflow client's variables and, with the embedded demo
    server, development mode unless ``FLIGHTDECK_DEV_MODE`` says otherwise. The dashboard
    honours development mode only because it is served on loopback."""
    env = {**environ, **mlflow_client_environment(settings)}
    if settings.embedded:  # the dashboard reads the embedded server as an external one
        env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
        env.setdefault("FLIGHTDECK_DEV_MODE", "1")
    return env


def _start_embedded_mlflow(settings: Settings) -> ServerProcess:
    if port_in_use(settings.mlflow_port):
        raise RuntimeError(
            f"port {settings.mlflow_port} is already in use. Stop what runs there, set "
            "FLIGHTDECK_MLFLOW_PORT to another port, or set MLFLOW_TRACKING_URI to use that "
            "server instead of the embedded one."
        )
    print(f"Starting MLflow on {settings.tracking_uri} (data in {settings.data_dir})…", flush=True)
    server = start_mlflow_server(settings.data_dir, settings.mlflow_port)
    marker = settings.data_dir / SEEDED_MARKER
    if not marker.exists():
        print("First start: seeding demo data (about 90 s)…", flush=True)
        env = {**os.environ, **mlflow_client_environment(settings)}
        result = subprocess.run([sys.executable, "-m", "jobs.seed_demo"], env=env, check=False)
        if result.returncode != 0:
            server.stop()
            raise RuntimeError(
                "seeding the demo data failed (see above); run `make run` again "
                "to retry, it resumes where it stopped."
            )
        marker.touch()
    return server


def _watch(servers: list[ServerProcess]) -> int:
    while True:
        for server in servers:
            if server.process.poll() is not None:
                print(
                    f"The {server.name} server stopped unexpectedly (exit code "
                    f"{server.process.returncode}); see {server.log_path}.",
                    file=sys.stderr,
                )
                return 1
        time.sleep(1)


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
