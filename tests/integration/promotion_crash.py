"""Approve a promotion in a process that kills itself with SIGKILL at a chosen step.

Test harness only (``python -m tests.integration.promotion_crash STEP REQUEST_ID APPROVER``):
it wires the real store, MLflow gateway and governance from the environment, as the dashboard
does, then plants one crash point by wrapping the step it names. Production code has no hooks.

Steps, in the order an approval passes them:

- ``mid_claim``: inside the transaction that records the approval and claims the request;
- ``after_claim``: the claim is committed, MLflow not yet asked;
- ``after_move``: MLflow moved the alias, nothing recorded since;
- ``before_outcome``: inside the transaction that records the outcome;
- ``before_evidence``: the outcome is committed, the mirror tags and model card not written.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from services.core.gateway import TrackingGateway
from services.core.settings import load_settings
from services.core.store import open_store
from services.core.wiring import Wiring
from services.governance import audit, promotion
from services.governance.auth import Identity
from services.governance.config import load_governance

STEPS = ("mid_claim", "after_claim", "after_move", "before_outcome", "before_evidence")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def plant(step: str, gateway: TrackingGateway) -> None:
    """Wrap the call that marks ``step`` so that it kills this process."""
    real_append, real_set_alias, real_tags = (
        audit.append,
        gateway.set_alias,
        gateway.set_model_version_tags,
    )

    def append(connection: Any, **event: Any) -> Any:
        deadly = {"mid_claim": "promotion.executing", "before_outcome": "alias.moved"}
        if deadly.get(step) == event["action"]:
            die()
        return real_append(connection, **event)

    def set_alias(*args: Any) -> None:
        real_set_alias(*args)
        if step == "after_move":
            die()

    def set_tags(*args: Any) -> None:
        if step == "before_evidence":
            die()
        real_tags(*args)

    def execute(*args: Any, **kwargs: Any) -> Any:
        die()

    audit.append = append  # type: ignore[assignment]
    gateway.set_alias = set_alias  # type: ignore[method-assign]
    gateway.set_model_version_tags = set_tags  # type: ignore[method-assign]
    if step == "after_claim":
        promotion._execute = execute  # type: ignore[assignment]


def main(step: str, request_id: str, approver: str) -> int:
    if step not in STEPS:
        print(f"unknown step {step!r}; steps are {', '.join(STEPS)}", file=sys.stderr)
        return 2
    settings = load_settings()
    gateway = TrackingGateway(settings)
    services = Wiring(
        open_store(settings.store_url), gateway, load_governance(settings.governance_path)
    )
    plant(step, gateway)
    promotion.decide(
        services, Identity(approver, True, "approver"), request_id, approve=True, comment="ok"
    )
    return 0  # not reached: the planted step kills the process


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
