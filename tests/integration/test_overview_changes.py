"""The week's changes in plain language, from a real audit log."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.core.store import Store
from services.core.wiring import Wiring
from services.governance import audit
from services.governance.config import Governance
from services.overview.fleet import model_changes
from tests.report_fixtures import health

pytestmark = pytest.mark.integration

MOVED_AT = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)


def moved(store: Store, version: int, previous: int, request_id: str, **details: Any) -> None:
    with store.write() as connection:
        audit.append(
            connection,
            actor="dana",
            action="alias.moved",
            subject=audit.subject_for("wine", "alias", "champion"),
            request_id=request_id,
            details={"version": version, "previous": previous, **details},
            now=MOVED_AT,
        )


def services(store: Store) -> Wiring:
    return Wiring(store, registry=None, governance=Governance())  # type: ignore[arg-type]


def test_a_promotion_reads_as_a_sentence_with_its_approver_and_metric_change(
    store: Store,
) -> None:
    moved(store, 7, 6, "r1", approved_by=["dana"])
    wine = replace(
        health("wine"),
        primary_metric="eval_accuracy",
        metric_by_version=((6, 0.912), (7, 0.930)),
    )

    [change] = model_changes(services(store), wine, [], [], {}, MOVED_AT - timedelta(days=7))

    assert change.kind == "promotion"
    assert change.text == (
        "wine v7 became champion on 12 Nov, approved by dana; eval_accuracy +1.8 pts (better)."
    )


def test_a_rollback_and_old_moves(store: Store) -> None:
    moved(store, 6, 7, "r2", approved_by=[])
    since = MOVED_AT - timedelta(days=7)

    [change] = model_changes(services(store), health("wine"), [], [], {"r2": "rollback"}, since)
    assert (change.kind, change.text) == (
        "rollback",
        "wine @champion was rolled back to v6 on 12 Nov, by dana.",
    )
    later = MOVED_AT + timedelta(days=8)
    assert model_changes(services(store), health("wine"), [], [], {}, later) == []
