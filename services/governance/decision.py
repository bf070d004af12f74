"""What an approver sees before deciding: champion against challenger, and the gates."""

from __future__ import annotations

from dataclasses import dataclass

from services.core.errors import NotFound
from services.core.records import ModelVersionSummary, Run
from services.core.wiring import Wiring
from services.experiments.registry import (
    SignatureCheck,
    VersionComparison,
    signature_comparison,
    version_comparison,
)
from services.governance.gates import GateResult, evaluate_gates
from services.governance.requests import PromotionRequest


@dataclass(frozen=True, slots=True)
class DecisionView:
    """The decision page's content for one request."""

    request: PromotionRequest
    """The request being decided."""
    challenger: ModelVersionSummary | None
    """The version to promote; None when it was deleted."""
    champion: ModelVersionSummary | None
    """The version holding the target when the request was made; None when none did."""
    comparison: VersionComparison | None
    """Params and metrics, champion (A) against challenger (B); None without both runs."""
    signature: SignatureCheck
    """Whether the challenger accepts the champion's inputs."""
    gates: tuple[GateResult, ...]
    """The configured gates with their verdicts."""
    evaluation_note: str
    """Whether the two were evaluated on the same data, for a person."""

    @property
    def gates_pass(self) -> bool:
        return all(g.passed for g in self.gates)


def decision_view(services: Wiring, request: PromotionRequest) -> DecisionView:
    """Gather the decision page's content; reads MLflow, never writes.

    Raises:
        TrackingError: MLflow could not be read (a deleted version is not an error).
    """
    registry = services.registry
    challenger = _version(services, request.model, request.version)
    champion = (
        _version(services, request.model, request.expected_holder)
        if request.expected_holder is not None
        else None
    )
    challenger_run = _run(services, challenger)
    champion_run = _run(services, champion)
    comparison = (
        version_comparison(
            champion_run,
            challenger_run,
            labels=(f"v{request.expected_holder} (now)", f"v{request.version} (proposed)"),
        )
        if champion_run and challenger_run
        else None
    )
    signature = signature_comparison(
        registry.model_version_signature(request.model, champion.version) if champion else None,
        registry.model_version_signature(request.model, challenger.version) if challenger else None,
    )
    return DecisionView(
        request=request,
        challenger=challenger,
        champion=champion,
        comparison=comparison,
        signature=signature,
        gates=tuple(evaluate_gates(services, request)),
        evaluation_note=evaluation_note(champion_run, challenger_run),
    )


def evaluation_note(champion: Run | None, challenger: Run | None) -> str:
    """Whether the metrics are comparable: the same evaluation dataset, by digest."""
    if champion is None or challenger is None:
        return "Only one of the two versions has a source run: there is nothing to compare."
    digests_a = {d.digest for d in champion.datasets if d.digest}
    digests_b = {d.digest for d in challenger.datasets if d.digest}
    if not digests_a or not digests_b:
        return "At least one run logged no input dataset, so the evaluation data is unknown."
    if digests_a & digests_b:
        return "Both runs logged the same dataset (same digest): the metrics are comparable."
    return "The runs logged different datasets (different digests): compare the metrics with care."


def _version(services: Wiring, model: str, version: int) -> ModelVersionSummary | None:
    try:
        return services.registry.get_model_version(model, version)
    except NotFound:
        return None


def _run(services: Wiring, version: ModelVersionSummary | None) -> Run | None:
    if version is None or not version.run_id:
        return None
    try:
        return services.registry.get_run(version.run_id)
    except NotFound:
        return None
