"""Promotion gates: the checks a request must pass before it can be approved.

Which gates apply, and their thresholds, come from ``flightdeck.toml`` (:class:`Gates`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.compare import inferred_lower_is_better
from services.errors import NotFound
from services.governance import Gates
from services.monitoring import RED, UNKNOWN, drift_status, monitoring_runs
from services.records import ModelVersionSummary, Run
from services.registry import signature_comparison

if TYPE_CHECKING:
    from services.promotion import PromotionRequest, Registry, Services


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate of the decision page's checklist."""

    name: str
    """What is checked, for a person."""
    passed: bool
    """True when the gate is met."""
    detail: str
    """The figures behind the verdict."""


def evaluate_gates(services: Services, request: PromotionRequest) -> list[GateResult]:
    """The configured gates for ``request``, each with its verdict and figures."""
    gates = services.governance.gates_for(request.model)
    registry = services.registry
    try:
        challenger = registry.get_model_version(request.model, request.version)
    except NotFound:
        return [
            GateResult(
                "The version still exists",
                False,
                f"version {request.version} was deleted after the request: reject or cancel it",
            )
        ]
    try:
        champion = (
            registry.get_model_version(request.model, request.expected_holder)
            if request.expected_holder is not None
            else None
        )
    except NotFound:  # the holder was deleted since: compare with nothing
        champion = None
    challenger_run = registry.get_run(challenger.run_id) if challenger.run_id else None
    champion_run = registry.get_run(champion.run_id) if champion and champion.run_id else None
    results = [_improvement_gate(gates, challenger_run, champion_run)]
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
        results.append(_signature_gate(registry, request, champion))
    if gates.block_on_drift_alarm:
        results.append(_drift_gate(services, request))
    return results


def _improvement_gate(gates: Gates, challenger: Run | None, champion: Run | None) -> GateResult:
    metric = gates.primary_metric
    name = f"{metric} improves by at least {gates.min_improvement:g}"
    new = challenger.metrics.get(metric) if challenger else None
    if champion is None:
        return GateResult(name, True, "no current holder to compare with")
    old = champion.metrics.get(metric)
    if new is None or old is None or not (math.isfinite(new) and math.isfinite(old)):
        return GateResult(name, False, f"{metric} is missing on one of the two versions' runs")
    higher = (
        gates.higher_is_better
        if gates.higher_is_better is not None
        else not inferred_lower_is_better(metric)
    )
    improvement = (new - old) if higher else (old - new)
    detail = f"{old:.4g} → {new:.4g} ({'+' if improvement >= 0 else ''}{improvement:.4g})"
    return GateResult(name, improvement >= gates.min_improvement, detail)


def _signature_gate(
    registry: Registry, request: PromotionRequest, champion: ModelVersionSummary | None
) -> GateResult:
    name = "The signatures are compatible"
    if champion is None:
        return GateResult(name, True, "no current holder to compare with")
    check = signature_comparison(
        registry.model_version_signature(request.model, champion.version),
        registry.model_version_signature(request.model, request.version),
    )
    return GateResult(name, check.compatible, check.reason)


def _drift_gate(services: Services, request: PromotionRequest) -> GateResult:
    name = "No open drift alarm"
    status = drift_status(
        monitoring_runs(services.registry, request.model), services.governance.drift
    )
    if status.level == UNKNOWN:
        return GateResult(name, True, "no monitoring run for this model yet")
    return GateResult(name, status.level != RED, f"{status.level}: {status.reason}")
