"""Promotion gates: the checks a request must pass before it can be approved.

Which gates apply, and their thresholds, come from ``flightdeck.toml`` (:class:`Gates`).

A gate never trusts what the gated version says about itself. Anyone who can log to MLflow can
log ``champion_eval_*`` metrics and a ``flightdeck.job_id`` tag on a run or a version, so those
count only when the application store vouches for them: a succeeded Flightdeck retraining job
of the same model that wrote this run (:func:`flightdeck_job`). Otherwise they are shown,
marked self-reported, and the gate uses what Flightdeck can check itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.core.conventions import CHAMPION_METRIC_PREFIX, COMPARED_WITH_TAG, JOB_ID_TAG
from services.core.errors import NotFound, RetrainingError
from services.core.records import ModelVersionSummary, Run
from services.core.store import Store
from services.core.wiring import Wiring
from services.experiments.compare import inferred_lower_is_better
from services.experiments.registry import signature_comparison
from services.governance.config import DriftThresholds, Gates
from services.governance.requests import PromotionRequest, Registry
from services.monitoring.runs import RED, UNKNOWN, MonitoringRun, drift_status, monitoring_runs
from services.retraining.base import SUCCEEDED
from services.retraining.jobs import RetrainingJob, get_job


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate of the decision page's checklist."""

    name: str
    """What is checked, for a person."""
    passed: bool
    """True when the gate is met."""
    detail: str
    """The figures behind the verdict."""
    self_reported: str = ""
    """Figures the checked version reported about itself that the gate did not trust (not
    vouched for by the store), for a person; empty when there are none."""


def evaluate_gates(services: Wiring, request: PromotionRequest) -> list[GateResult]:
    """The configured gates for ``request``, each with its verdict and figures."""
    return evaluate_candidate(services, request.model, request.version, request.expected_holder)


def evaluate_candidate(
    services: Wiring, model: str, version: int, holder: int | None
) -> list[GateResult]:
    """The configured gates for moving ``model``'s target from ``holder`` to ``version``; the
    retraining loop asks this before it opens a request."""
    gates = services.governance.gates_for(model)
    registry = services.registry
    try:
        challenger = registry.get_model_version(model, version)
    except NotFound:
        return [
            GateResult(
                "The version still exists",
                False,
                f"version {version} was deleted after the request: reject or cancel it",
            )
        ]
    try:
        champion = registry.get_model_version(model, holder) if holder is not None else None
    except NotFound:  # the holder was deleted since: compare with nothing
        champion = None
    challenger_run = registry.get_run(challenger.run_id) if challenger.run_id else None
    champion_run = registry.get_run(champion.run_id) if champion and champion.run_id else None
    vouched = (
        flightdeck_job(
            services.store, model, challenger_run.tags.get(JOB_ID_TAG), challenger_run.run_id
        )
        if challenger_run
        else None
    )
    results = [_improvement_gate(gates, challenger_run, champion_run, champion, vouched)]
    if gates.require_evaluation:
        value = challenger_run.metrics.get(gates.primary_metric) if challenger_run else None
        results.append(
            GateResult(
                "The challenger has an evaluation",
                value is not None,
                f"{gates.primary_metric} = {value:.4g}"
                if value is not None
                else f"its run logged no {gates.primary_metric}",
            )
        )
    if gates.require_compatible_signature:
        results.append(_signature_gate(registry, model, version, champion))
    if gates.block_on_drift_alarm:
        results.append(_drift_gate(services, model, challenger))
    return results


def flightdeck_job(
    store: Store, model: str, job_id: str | None, run_id: str | None
) -> RetrainingJob | None:
    """The retraining job that ``job_id`` names (a ``flightdeck.job_id`` tag on a run or a
    version), when the application store vouches for it: a succeeded job of ``model`` whose
    MLflow run, once recorded, is ``run_id``. None when no such job is on record, so the tag
    is only a claim that anyone who can log to MLflow could have made.

    Raises:
        StoreError: The application store could not be read.
    """
    if not job_id:
        return None
    try:
        job = get_job(store, job_id)
    except RetrainingError:
        return None
    if job.model != model or job.status != SUCCEEDED:
        return None
    if job.mlflow_run_id is not None and job.mlflow_run_id != run_id:
        return None
    return job


def primary_higher_is_better(gates: Gates) -> bool:
    """The primary metric's direction: as configured, else inferred from its name."""
    if gates.higher_is_better is not None:
        return gates.higher_is_better
    return not inferred_lower_is_better(gates.primary_metric)


def _improvement_gate(
    gates: Gates,
    challenger: Run | None,
    champion: Run | None,
    champion_version: ModelVersionSummary | None,
    vouched: RetrainingJob | None,
) -> GateResult:
    """The primary metric's improvement: on the challenger's own held-out set when a Flightdeck
    retraining job scored this champion there too (``vouched``), else the two runs' own
    evaluations. A champion score the challenger's run logged without such a job is shown as
    self-reported and never decides the gate."""
    metric = gates.primary_metric
    name = f"{metric} improves by at least {gates.min_improvement:g}"
    new = challenger.metrics.get(metric) if challenger else None
    if champion is None or champion_version is None:
        return GateResult(name, True, "no current holder to compare with")
    old = champion.metrics.get(metric)
    claimed_key = f"{CHAMPION_METRIC_PREFIX}{metric}"
    claimed = (
        challenger.metrics.get(claimed_key)
        if challenger is not None
        and challenger.tags.get(COMPARED_WITH_TAG) == str(champion_version.version)
        else None
    )
    same_data = claimed is not None and vouched is not None
    self_reported = (
        f"the challenger's run logged {claimed_key} = {claimed:.4g} for v"
        f"{champion_version.version} on its own held-out data, but no Flightdeck retraining "
        "job on record wrote that run, so the gate compares the two runs' own evaluations"
        if claimed is not None and vouched is None
        else ""
    )
    if same_data and claimed is not None:
        old = claimed
    if new is None or old is None or not (math.isfinite(new) and math.isfinite(old)):
        return GateResult(
            name, False, f"{metric} is missing on one of the two versions' runs", self_reported
        )
    higher = primary_higher_is_better(gates)
    improvement = (new - old) if higher else (old - new)
    detail = f"{old:.4g} → {new:.4g} ({'+' if improvement >= 0 else ''}{improvement:.4g})"
    if same_data and vouched is not None:
        detail += f" on the same held-out data (retraining job {vouched.job_id[:8]})"
    elif self_reported:
        detail += " on each run's own evaluation"
    return GateResult(name, improvement >= gates.min_improvement, detail, self_reported)


def _signature_gate(
    registry: Registry, model: str, version: int, champion: ModelVersionSummary | None
) -> GateResult:
    name = "The signatures are compatible"
    if champion is None:
        return GateResult(name, True, "no current holder to compare with")
    check = signature_comparison(
        registry.model_version_signature(model, champion.version),
        registry.model_version_signature(model, version),
    )
    return GateResult(name, check.compatible, check.reason)


def _drift_gate(services: Wiring, model: str, challenger: ModelVersionSummary) -> GateResult:
    """Red blocks approval, except for a version a Flightdeck retraining registered after the
    alarm began: that version is the response to the alarm, so it does not hold it back."""
    name = "No open drift alarm"
    runs = monitoring_runs(services.registry, model)
    thresholds = services.governance.drift
    status = drift_status(runs, thresholds)
    if status.level == UNKNOWN:
        return GateResult(name, True, "no monitoring run for this model yet")
    if status.level != RED:
        return GateResult(name, True, f"{status.level}: {status.reason}")
    began = alarm_began(runs, thresholds)
    job = flightdeck_job(
        services.store, model, challenger.tags.get(JOB_ID_TAG), challenger.run_id or None
    )
    if job and began and challenger.created_at and challenger.created_at > began:
        return GateResult(
            name,
            True,
            f"red ({status.reason}), but retraining job {job.job_id[:8]} made version "
            f"{challenger.version} after the alarm began on {began:%Y-%m-%d %H:%M} UTC: it is "
            "the response to it",
        )
    return GateResult(name, False, f"{status.level}: {status.reason}")


def alarm_began(runs: Sequence[MonitoringRun], thresholds: DriftThresholds) -> datetime | None:
    """When the current run of batches at the alarm share began: the first one's window end."""
    began = None
    for run in sorted(runs, key=lambda r: (r.window_start, r.window_end), reverse=True):
        if run.drift_share < thresholds.alarm_share:
            break
        began = run.window_end
    return began
