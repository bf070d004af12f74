"""The control loop: ``python -m jobs.scheduler`` (started by ``make run``).

At start-up it marks the jobs no engine runs any more as lost; then, every ``--interval``
seconds, it tries the leader lock and, when it holds it, runs one pass of
:mod:`services.control_loop.passes` (retraining, external alias moves, reconciliation, scheduled
drift, notifications, the audit anchor) and records the pass as its heartbeat. Start one on every
replica: only the leader acts, and another takes over within an interval when it dies.
``--once`` runs a single pass.

With ``FLIGHTDECK_REGISTRY_WEBHOOK_PORT`` set (``make run`` sets it for the embedded MLflow), it
also listens there for MLflow's signed registry webhooks and records alias moves within seconds
(:mod:`services.control_loop.registry_webhooks`); polling on each pass stays the guarantee.

``--backfill MODEL FIRST END`` asks the loop to monitor the model's batches from ``FIRST`` up to
``END`` that have no run yet (dates for a database source, batch names for files), and exits;
the next passes do it::

    python -m jobs.scheduler --backfill wine-classifier 2026-11-01 2026-12-01

Exit status: 0 after ``--once``, a recorded backfill or on Ctrl-C; 1 when ``--once`` could not
take the lock; 2 when the configuration or the backfill is invalid.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import FrameType

from services.control_loop import registry_webhooks as webhooks
from services.control_loop.leadership import leader_lock
from services.control_loop.passes import (
    PassInputs,
    last_retraining_check,
    record_pass,
    run_pass,
)
from services.core.errors import FlightdeckError
from services.core.gateway import TrackingGateway
from services.core.settings import EMBEDDED_HOST, Settings, apply_mlflow_environment, load_settings
from services.core.wiring import Wiring, build
from services.governance import promotion
from services.governance.alias_history import record_reported_move
from services.governance.config import load_governance
from services.monitoring.scheduled_drift import request_backfill
from services.retraining.engines import job_environment
from services.retraining.jobs import mark_lost_at_startup

DEFAULT_INTERVAL_S = 30.0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s control loop %(message)s", level=logging.INFO)
    log = logging.getLogger("flightdeck.scheduler")
    try:
        settings = load_settings()
        apply_mlflow_environment(settings)
        gateway = TrackingGateway(settings)
        services = build(settings, gateway=gateway)
    except FlightdeckError as exc:
        print(f"Error: the control loop cannot start: {exc}", file=sys.stderr)
        return 2
    if args.backfill:
        return _request_backfill(services, args.backfill)
    receiver = _start_receiver(settings, gateway, services, log)
    lock = leader_lock(services.store, settings.data_dir)
    signal.signal(signal.SIGTERM, _stop)
    inputs = PassInputs(
        gateway=gateway,
        data_dir=settings.data_dir,
        job_env=job_environment(settings),
        stuck_after=promotion.stuck_after(settings.mlflow_call_limit_s),
        # With no pass on record: what fell due in the last interval.
        last_check=datetime.now(UTC) - timedelta(seconds=args.interval),
    )
    try:
        for job in mark_lost_at_startup(services.store, services.backend):
            log.info("job %s of %s is %s", job.job_id[:8], job.model, job.status)
    except FlightdeckError as exc:
        log.warning("could not check the jobs left from before: %s", exc)
    log.info(
        "started as %s: %s engine, a pass every %g s",
        lock.holder,
        services.backend.name,
        args.interval,
    )
    leading = False
    try:
        while True:
            now = datetime.now(UTC)
            if lock.try_acquire():
                if not leading:
                    log.info("leading: this process runs the passes")
                leading = True
                try:  # policies are edited on the page: read them again each pass
                    services = services.with_governance(load_governance(settings.governance_path))
                except FlightdeckError as exc:
                    log.warning("keeping the previous policies: %s", exc)
                try:  # since the last pass of any replica (this one may just have taken over)
                    since = last_retraining_check(services.store)
                except FlightdeckError:
                    since = None
                inputs = replace(inputs, last_check=since or inputs.last_check)
                report = run_pass(services, inputs, now, lock.holder, args.interval)
                for step in report.steps:
                    problem = f" ({step.problem})" if step.problem else ""
                    log.info("%s: %s%s", step.name, step.done, problem)
                try:
                    record_pass(services.store, report)
                except FlightdeckError as exc:
                    log.warning("heartbeat not recorded: %s", exc)
            elif args.once:
                log.warning("another control loop holds the lock: this one did nothing")
                return 1
            if args.once:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        lock.release()
        if receiver is not None:
            receiver.stop()


def _start_receiver(
    settings: Settings, gateway: TrackingGateway, services: Wiring, log: logging.Logger
) -> webhooks.Receiver | None:
    """Listen for MLflow's registry webhooks and subscribe to them, when a port is set; the
    loop runs (polling) without them when the server cannot send any."""
    if not settings.registry_webhook_port:
        return None
    secret = webhooks.new_secret()  # this process subscribes, so only it needs to know it

    def record(report: webhooks.AliasReport) -> bool:
        return record_reported_move(
            services, report.model, report.alias, report.version, report.delivery_id
        )

    try:
        receiver = webhooks.Receiver(
            EMBEDDED_HOST, settings.registry_webhook_port, secret, record
        ).start()
    except OSError as exc:
        log.warning(
            "registry webhooks off: cannot listen on %s: %s", settings.registry_webhook_port, exc
        )
        return None
    url = settings.registry_webhook_url or f"http://{EMBEDDED_HOST}:{receiver.port}{webhooks.PATH}"
    try:
        gateway.replace_registry_webhook(
            webhooks.webhook_name(url), url, secret, webhooks.ALIAS_EVENTS
        )
    except FlightdeckError as exc:
        log.warning("registry webhooks off (polling only): %s", exc)
        receiver.stop()
        return None
    log.info("receiving MLflow registry webhooks at %s", url)
    return receiver


def _request_backfill(services: Wiring, request: Sequence[str]) -> int:
    model, first, end = request
    try:
        backfill = request_backfill(
            services.store,
            services.governance.drift_sources,
            model,
            first,
            end,
            actor=f"{getpass.getuser()} (command line)",
            now=datetime.now(UTC),
        )
    except FlightdeckError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(
        f"Backfill {backfill.backfill_id} of {model} from {first} to {end}: the next passes do it."
    )
    return 0


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.scheduler",
        description="Keep Flightdeck true on an interval: retraining, external alias moves, "
        "reconciliation, scheduled drift, notifications and the audit anchor.",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help=f"seconds between passes (default {DEFAULT_INTERVAL_S:g})",
    )
    parser.add_argument("--once", action="store_true", help="run one pass and exit")
    parser.add_argument(
        "--backfill",
        nargs=3,
        metavar=("MODEL", "FIRST", "END"),
        help="ask the loop to monitor MODEL's batches from FIRST up to END, then exit",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
