"""The promotion domain model: statuses, requests and decisions, and what promotion needs
from MLflow (:class:`Registry`). No behaviour here, so gates, the model card and notifications
can name these types without importing the promotion service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from services.core.records import Experiment, ModelVersionSummary, RegisteredModel, Run
from services.monitoring.runs import RunReader

if TYPE_CHECKING:
    from services.core.records import ModelSignature

PENDING, EXECUTING, EXECUTED = "pending", "executing", "executed"
REJECTED, EXPIRED, CANCELLED, STALE, FAILED = "rejected", "expired", "cancelled", "stale", "failed"
OPEN_STATUSES = (PENDING, EXECUTING, FAILED)
"""Requests still in play: shown first, and blocking a second request for the same target."""
UNDECIDED_STATUSES = (PENDING, FAILED)
"""Requests that expire when not acted on in time, and that their requester may cancel."""
PROMOTION, ROLLBACK = "promotion", "rollback"
"""A request's kind: promote a version, or roll back to the previous holder."""


class Registry(RunReader, Protocol):
    """What promotion needs from MLflow (the drift gate reads monitoring runs too):
    :class:`services.core.gateway.TrackingGateway`."""

    def get_model_version(self, name: str, version: int) -> ModelVersionSummary: ...
    def model_versions(self, filter_string: str) -> list[ModelVersionSummary]: ...

    def versions_of(self, name: str) -> list[ModelVersionSummary]: ...
    def alias_holder(self, name: str, alias: str) -> int | None: ...
    def set_alias(self, name: str, alias: str, version: int) -> None: ...
    def set_stage(self, name: str, version: int, stage: str) -> None: ...
    def set_model_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None: ...
    def get_run(self, run_id: str) -> Run: ...
    def model_version_signature(self, name: str, version: int) -> ModelSignature | None: ...
    def model_aliases(self, name: str) -> dict[str, int]: ...
    def registered_models(self) -> list[RegisteredModel]: ...
    def list_experiments(self, include_deleted: bool = False) -> list[Experiment]: ...
    def runs_by_id(self, run_ids: Sequence[str]) -> dict[str, Run]: ...
    def end_run(self, run_id: str, status: str) -> None: ...
    def set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def log_artifact_text(self, run_id: str, path: str, text: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """One approver's decision on a request."""

    decided_by: str
    """Who decided; untrusted text."""
    approve: bool
    """True to approve, False to reject."""
    comment: str
    """Why; untrusted text."""
    decided_at: datetime
    """When (aware, UTC)."""


@dataclass(frozen=True, slots=True)
class PromotionRequest:
    """A request to point an alias (or legacy stage) of a model at a version."""

    request_id: str
    """32-character hex id."""
    kind: str
    """``promotion``, or ``rollback`` (to the previous holder)."""
    model: str
    """Registered model name; untrusted text."""
    version: int
    """The version to promote."""
    target_kind: str
    """``alias`` or ``stage``."""
    target: str
    """The alias (e.g. ``champion``) or stage (e.g. ``Production``)."""
    expected_holder: int | None
    """The version holding the target when the request was made; None when nobody held it."""
    reason: str
    """Why; untrusted text."""
    rollback_plan: str
    """How to undo it; untrusted text."""
    requested_by: str
    """Who asked; untrusted text."""
    requested_at: datetime
    """When (aware, UTC)."""
    expires_at: datetime
    """When an undecided request expires (aware, UTC)."""
    status: str
    """See the module docstring."""
    status_reason: str = ""
    """Why it is stale, failed or expired, or a note on an executed request."""
    updated_at: datetime | None = None
    """When the status last changed (aware, UTC): for an executed request, when it moved."""
    override_by: str | None = None
    """The admin who overrode failing gates or executed directly."""
    override_reason: str | None = None
    """Their reason."""
    decisions: tuple[Decision, ...] = ()
    """Decisions so far, oldest first."""

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(d.decided_by for d in self.decisions if d.approve)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES
