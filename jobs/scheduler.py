"""The retraining scheduler: ``python -m jobs.scheduler`` (started by ``make run``).

At start-up and then every ``--interval`` seconds it resolves promotions an interrupted process
left ``executing`` (:func:`services.promotion.reconcile`), follows the retraining jobs (recording
outcomes and proposing versions that pass the gates, even with no page open), then reads
``flightdeck.toml`` again, judges each model's retraining policy and starts what fires. Each
decision is recorded and audited once per cause, including the ones a cooldown or budget
blocked. ``--once`` runs a single pass.

Exit status: 0 after ``--once`` or on Ctrl-C; 2 when the configuration is invalid.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import FrameType

from services import promotion
from services.audit_anchor import AuditAnchor, anchor_audit_head, open_audited_store
from services.errors import FlightdeckError
from services.governance import load_governance
from services.retraining.engines import backend_for, job_environment
from services.retraining.jobs import mark_lost_at_startup
from services.retraining.loop import follow_jobs
from services.retraining.scheduler import run_policies
from services.settings import apply_mlflow_environment, load_settings
from services.store import Store
from services.tracking import TrackingGateway

DEFAULT_INTERVAL_S = 30.0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s scheduler %(message)s", level=logging.INFO)
    log = logging.getLogger("flightdeck.scheduler")
    try:
        settings = load_settings()
        governance = load_governance(settings.governance_path)
        apply_mlflow_environment(settings)
        gateway = TrackingGateway(settings)
        anchor = AuditAnchor(gateway, settings.audit_anchor_experiment)
        services = promotion.Services(
            store=open_audited_store(settings, anchor), registry=gateway, governance=governance
        )
    except FlightdeckError as exc:
        print(f"Error: the scheduler cannot start: {exc}", file=sys.stderr)
        return 2
    backend = backend_for(settings)
    signal.signal(signal.SIGTERM, _stop)
    # A schedule that fell due while nothing ran fires at most once, on the first pass.
    last_check = datetime.now(UTC) - timedelta(seconds=args.interval)
    try:
        for job in mark_lost_at_startup(services.store, backend):
            log.info("job %s of %s is %s", job.job_id[:8], job.model, job.status)
    except FlightdeckError as exc:
        log.warning("could not check the jobs left from before: %s", exc)
    log.info("started: %s engine, a pass every %g s", backend.name, args.interval)
    interrupted_after = promotion.stuck_after(settings.mlflow_call_limit_s)
    try:
        while True:
            now = datetime.now(UTC)
            try:  # policies are edited on the page: read them again each pass
                services = replace(services, governance=load_governance(settings.governance_path))
            except FlightdeckError as exc:
                log.warning("keeping the previous policies: %s", exc)
            try:
                for request in promotion.reconcile(services, stuck_after=interrupted_after):
                    log.info(
                        "promotion %s of %s recovered: %s",
                        request.request_id[:8],
                        request.model,
                        request.status,
                    )
                for job in follow_jobs(services, backend):
                    log.info(
                        "job %s of %s: %s %s",
                        job.job_id[:8],
                        job.model,
                        job.status,
                        job.outcome or "",
                    )
                for decision in run_policies(
                    services, backend, job_environment(settings), last_check=last_check, now=now
                ):
                    log.info(
                        "%s %s by %s: %s",
                        decision.model,
                        decision.outcome,
                        decision.trigger,
                        decision.reason,
                    )
                last_check = now
            except FlightdeckError as exc:  # MLflow or the store is down: try again next pass
                log.warning("pass skipped: %s", exc)
            _anchor_audit_log(services.store, anchor, log)
            if args.once:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def _anchor_audit_log(store: Store, anchor: AuditAnchor, log: logging.Logger) -> None:
    """Anchor the audit log's newest event in MLflow (every pass, whatever else failed)."""
    try:
        result = anchor_audit_head(store, anchor)
    except FlightdeckError as exc:
        log.warning("audit log not anchored: %s", exc)
        return
    if result.moved and result.head is not None:
        log.info("audit log anchored at event %d", result.head.seq)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.scheduler",
        description="Follow retraining jobs and run the retraining policies on an interval.",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help=f"seconds between passes (default {DEFAULT_INTERVAL_S:g})",
    )
    parser.add_argument("--once", action="store_true", help="run one pass and exit")
    return parser


if __name__ == "__main__":
    sys.exit(main())
