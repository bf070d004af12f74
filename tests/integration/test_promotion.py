"""The promotion flow against a real MLflow server and a real SQLite application store."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from services.core.errors import (
    FlightdeckError,
    PermissionDenied,
    PromotionConflict,
    PromotionError,
    ServerUnreachable,
    StoreError,
)
from services.core.gateway import TrackingGateway
from services.core.store import Store, open_store
from services.core.wiring import Wiring
from services.governance import alias_history, audit, promotion
from services.governance.auth import Identity
from services.governance.config import Gates, Governance
from services.governance.gates import evaluate_gates

APPROVERS = tuple(f"approver-{i:02d}" for i in range(20))
OPERATOR = Identity("omar", False, "operator")
APPROVER = Identity("ben", False, "approver")
ADMIN = Identity("ada", False, "admin")
VIEWER = Identity("vic", False, "viewer")
NO_SIGNATURE_GATE = Gates(primary_metric="eval_f1", require_compatible_signature=False)


def governance(**changes: Any) -> Governance:
    values: dict[str, Any] = {
        "role_members": {"approver": ("ben", "bea", *APPROVERS), "operator": ("omar",)},
        "default_gates": NO_SIGNATURE_GATE,
    }
    return Governance(**{**values, **changes})


def make_model(client: MlflowClient, name: str, f1_scores: list[float]) -> None:
    """A registered model with one version per score, each from its own run; v1 is champion."""
    experiment = client.create_experiment(f"{name}-runs")
    client.create_registered_model(name)
    for score in f1_scores:
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "eval_f1", score)
        client.set_terminated(run.info.run_id)
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(name, "champion", "1")


def events_of(store: Store, request_id: str) -> list[str]:
    with store.read() as connection:
        return [e.action for e in audit.events(connection, request_id=request_id)]


def open_request(services: Wiring, name: str, version: int = 2, key: str = "") -> Any:
    return promotion.request_promotion(
        services,
        OPERATOR,
        model=name,
        version=version,
        target="champion",
        reason="better f1 on the March holdout",
        rollback_plan="point champion back at v1",
        idempotency_key=key or f"{name}-{version}",
    )


def test_request_then_approve_moves_the_alias_mirrors_tags_and_audits_both_people(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    services = Wiring(store, gateway, governance())

    request = open_request(services, unique_name)
    assert request.status == "pending" and request.expected_holder == 1
    done = promotion.decide(services, APPROVER, request.request_id, approve=True, comment="ok")

    assert done.status == "executed"
    assert client.get_model_version_by_alias(unique_name, "champion").version == "2"
    tags = client.get_model_version(unique_name, "2").tags
    assert tags["flightdeck.request_id"] == request.request_id
    assert tags["flightdeck.requested_by"] == "omar"
    assert tags["flightdeck.approved_by"] == "ben"
    assert events_of(store, request.request_id) == [
        "promotion.requested",
        "promotion.approved",
        "promotion.executing",
        "alias.moved",
        "model_card.logged",
    ]
    # The evidence pack: a model card on the promoted version's run.
    run_id = client.get_model_version(unique_name, "2").run_id
    card = Path(client.download_artifacts(run_id, "model_card/model_card.md")).read_text()
    assert card.startswith(f"# Model card: {unique_name} v2 → @champion")
    assert "- **Requested by:** omar" in card and "- **Approved by:** ben" in card
    assert "- **Reason:** better f1 on the March holdout" in card
    assert "- **Replaces:** v1" in card
    assert "| eval_f1 | 0.8 | 0.85 |" in card
    assert "PASS eval_f1 improves by at least 0" in card
    page = Path(client.download_artifacts(run_id, "model_card/model_card.html")).read_text()
    assert "<td>better f1 on the March holdout</td>" in page
    (move,) = alias_history.alias_history(store, unique_name, "alias", "champion")
    assert (move.previous, move.version, move.actor, move.approved_by) == (1, 2, "ben", ("ben",))
    assert not move.external and move.request_id == request.request_id
    assert alias_history.rollback_target(services, unique_name, "champion") == 1
    with store.read() as connection:
        assert audit.verify(connection).intact


def test_the_requester_cannot_approve_their_own_request(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    services = Wiring(store, gateway, governance(role_members={"approver": ("omar",)}))
    requester = Identity("omar", False, "approver")
    request = promotion.request_promotion(
        services,
        requester,
        model=unique_name,
        version=2,
        target="champion",
        reason="mine",
        rollback_plan="",
        idempotency_key="k",
    )
    with pytest.raises(PermissionDenied, match="four-eyes"):
        promotion.decide(services, requester, request.request_id, approve=True, comment="")
    assert client.get_model_version_by_alias(unique_name, "champion").version == "1"


def test_a_viewer_calling_the_service_directly_is_denied_every_write(
    gateway: TrackingGateway, store: Store
) -> None:
    services = Wiring(store, gateway, governance())
    calls: list[Callable[[], object]] = [
        lambda: open_request_as(services, VIEWER),
        lambda: promotion.decide(services, VIEWER, "x", approve=True, comment=""),
        lambda: promotion.retry(services, VIEWER, "x"),
        lambda: promotion.execute_directly(
            services,
            VIEWER,
            model="m",
            version=1,
            target="champion",
            reason="r",
            idempotency_key="k",
        ),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied) as denied:
            call()
        assert denied.value.missing_role in {"operator", "approver", "admin"}
    with store.read() as connection:
        assert audit.events(connection) == []  # nothing was recorded, nothing moved


def open_request_as(services: Wiring, actor: Identity) -> object:
    return promotion.request_promotion(
        services,
        actor,
        model="m",
        version=2,
        target="champion",
        reason="r",
        rollback_plan="",
        idempotency_key="viewer",
    )


def test_twenty_concurrent_approvals_move_the_alias_exactly_once(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    moves: list[int] = []
    services = Wiring(store, _counting(gateway, moves), governance())
    request = open_request(services, unique_name)
    barrier = threading.Barrier(len(APPROVERS))

    def approve(name: str) -> str:
        barrier.wait()
        try:
            result = promotion.decide(
                services,
                Identity(name, False, "approver"),
                request.request_id,
                approve=True,
                comment="lgtm",
            )
        except PromotionConflict:
            return "conflict"
        return result.status

    with ThreadPoolExecutor(len(APPROVERS)) as pool:
        outcomes = list(pool.map(approve, APPROVERS))

    assert outcomes.count("executed") == 1 and outcomes.count("conflict") == 19
    assert moves == [2]
    assert events_of(store, request.request_id).count("alias.moved") == 1
    assert client.get_model_version_by_alias(unique_name, "champion").version == "2"


def _counting(gateway: TrackingGateway, moves: list[int]) -> Any:
    """The real gateway, with ``set_alias`` calls counted on their way through."""

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(gateway, name)

        def set_alias(self, model: str, alias: str, version: int) -> None:
            moves.append(version)
            gateway.set_alias(model, alias, version)

    return Counting()


def test_alias_moved_outside_meanwhile_makes_the_request_stale_and_is_recorded(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85, 0.90])
    services = Wiring(store, gateway, governance())
    alias_history.detect_external_changes(services, unique_name)  # Flightdeck sees v1 first
    request = open_request(services, unique_name)
    client.set_registered_model_alias(unique_name, "champion", "3")  # someone, in MLflow's UI

    with pytest.raises(PromotionConflict, match="now points at version 3"):
        promotion.decide(services, APPROVER, request.request_id, approve=True, comment="ok")

    assert promotion.get_request(store, request.request_id).status == "stale"
    assert client.get_model_version_by_alias(unique_name, "champion").version == "3"
    assert alias_history.detect_external_changes(services, unique_name) == ["champion"]
    external = alias_history.alias_history(store, unique_name, "alias", "champion")[-1]
    assert external.external and (external.previous, external.version) == (1, 3)


def test_a_failed_mlflow_call_after_the_intent_marks_the_request_failed_and_retry_works(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    failures = [ServerUnreachable("Cannot reach MLflow at test: connection refused.")]

    class FailsOnce:
        """Fault injection at the MLflow boundary: the first alias move finds the server down."""

        def __getattr__(self, name: str) -> Any:
            return getattr(gateway, name)

        def set_alias(self, model: str, alias: str, version: int) -> None:
            if failures:
                raise failures.pop()
            gateway.set_alias(model, alias, version)

    services = Wiring(store, FailsOnce(), governance())
    request = open_request(services, unique_name)
    with pytest.raises(PromotionError, match="connection refused"):
        promotion.decide(services, APPROVER, request.request_id, approve=True, comment="ok")
    failed = promotion.get_request(store, request.request_id)
    assert failed.status == "failed" and "connection refused" in failed.status_reason
    assert client.get_model_version_by_alias(unique_name, "champion").version == "1"

    assert promotion.retry(services, APPROVER, request.request_id).status == "executed"
    assert client.get_model_version_by_alias(unique_name, "champion").version == "2"
    assert events_of(store, request.request_id)[-4:] == [
        "promotion.failed",
        "promotion.executing",
        "alias.moved",
        "model_card.logged",
    ]


def test_an_unreachable_store_changes_nothing_in_mlflow(
    client: MlflowClient, gateway: TrackingGateway, tmp_path: Path, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    path = tmp_path / "flightdeck.db"
    store = open_store(f"sqlite:///{path}")
    services = Wiring(store, gateway, governance())
    request = open_request(services, unique_name)
    store.engine.dispose()
    for leftover in tmp_path.glob("flightdeck.db*"):
        leftover.unlink()
    path.mkdir()  # the database is gone: a folder stands where the file was

    with pytest.raises(StoreError, match="Nothing was changed in MLflow"):
        promotion.decide(services, APPROVER, request.request_id, approve=True, comment="ok")
    assert client.get_model_version_by_alias(unique_name, "champion").version == "1"


def test_a_version_deleted_before_or_after_the_request_is_refused_clearly(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85, 0.90])
    services = Wiring(store, gateway, governance())
    client.delete_model_version(unique_name, "3")
    with pytest.raises(PromotionError, match=r"Version 3 .* does not exist"):
        open_request(services, unique_name, version=3)

    request = open_request(services, unique_name, version=2)
    client.delete_model_version(unique_name, "2")
    with pytest.raises(PromotionError, match="was deleted after the request"):
        promotion.decide(services, APPROVER, request.request_id, approve=True, comment="ok")
    rejected = promotion.decide(
        services, APPROVER, request.request_id, approve=False, comment="version is gone"
    )
    assert rejected.status == "rejected"


def test_an_alias_whose_version_was_deleted_counts_as_unset(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    client.delete_model_version(unique_name, "1")  # champion's version
    services = Wiring(store, gateway, governance())
    request = open_request(services, unique_name)
    assert request.expected_holder is None
    done = promotion.decide(services, APPROVER, request.request_id, approve=True, comment="ok")
    assert done.status == "executed"
    assert client.get_model_version_by_alias(unique_name, "champion").version == "2"


def test_model_names_with_spaces_quotes_and_unicode_go_through_the_whole_flow(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    name = f"fraud model — ünï's {unique_name[-8:]}"
    make_model(client, name, [0.80, 0.85])
    services = Wiring(store, gateway, governance())
    request = open_request(services, name)
    done = promotion.decide(services, APPROVER, request.request_id, approve=True, comment="")
    assert done.status == "executed"
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert alias_history.alias_history(store, name, "alias", "champion")[0].version == 2


def test_a_model_name_with_a_slash_gets_mlflows_reason_not_a_traceback(
    gateway: TrackingGateway, store: Store
) -> None:
    services = Wiring(store, gateway, governance())
    # MLflow refuses '/' and ':' in model names, so such a model cannot exist.
    with pytest.raises(FlightdeckError, match="cannot contain '/'"):
        open_request(services, "fraud/model")
    with store.read() as connection:
        assert audit.events(connection) == []


def test_failing_gate_blocks_approval_unless_an_admin_overrides_with_a_reason(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.85, 0.80])  # v2 is worse
    strict = Gates(
        primary_metric="eval_f1", min_improvement=0.01, require_compatible_signature=False
    )
    services = Wiring(store, gateway, governance(default_gates=strict))
    request = open_request(services, unique_name)
    gates = evaluate_gates(services, request)
    assert [g.passed for g in gates] == [False, True, True]
    assert "0.85 → 0.8" in gates[0].detail

    with pytest.raises(PromotionError, match="Failing gates block approval"):
        promotion.decide(services, APPROVER, request.request_id, approve=True, comment="")
    with pytest.raises(PermissionDenied, match="admin"):
        promotion.decide(
            services,
            APPROVER,
            request.request_id,
            approve=True,
            comment="",
            override_reason="hotfix",
        )
    done = promotion.decide(
        services,
        ADMIN,
        request.request_id,
        approve=True,
        comment="",
        override_reason="latency fix outweighs 0.05 f1",
    )
    assert done.status == "executed" and done.override_by == "ada"


def test_admin_rolls_back_directly_with_a_reason_and_operators_cannot(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    services = Wiring(store, gateway, governance())
    request = open_request(services, unique_name)
    promotion.decide(services, APPROVER, request.request_id, approve=True, comment="")
    previous = alias_history.rollback_target(services, unique_name, "champion")
    assert previous == 1
    with pytest.raises(PermissionDenied):
        promotion.execute_directly(
            services,
            OPERATOR,
            model=unique_name,
            version=1,
            target="champion",
            reason="bad",
            idempotency_key="rb",
        )
    rolled = promotion.execute_directly(
        services,
        ADMIN,
        model=unique_name,
        version=previous,
        target="champion",
        reason="v2 errors in production",
        idempotency_key="rb",
    )
    assert rolled.kind == "rollback" and rolled.status == "executed"
    assert client.get_model_version_by_alias(unique_name, "champion").version == "1"
    history = alias_history.alias_history(store, unique_name, "alias", "champion")
    assert [(m.previous, m.version) for m in history] == [(1, 2), (2, 1)]
    assert alias_history.holder_at(history, history[0].at).version == 2


def test_same_idempotency_key_gives_one_request_and_expired_requests_cannot_be_decided(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    services = Wiring(store, gateway, governance(request_ttl_hours=1))
    first = open_request(services, unique_name, key="double-click")
    assert open_request(services, unique_name, key="double-click").request_id == first.request_id
    later = datetime.now(UTC) + timedelta(hours=2)
    (expired,) = promotion.list_requests(store, model=unique_name, now=later)
    assert expired.status == "expired"  # as read: the control loop records it on its pass
    with pytest.raises(PromotionConflict, match="expired"):
        promotion.decide(services, APPROVER, first.request_id, approve=True, comment="", now=later)


def test_stage_target_moves_the_legacy_stage(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    services = Wiring(store, gateway, governance(target="stage"))
    request = promotion.request_promotion(
        services,
        OPERATOR,
        model=unique_name,
        version=2,
        target="Production",
        reason="go live",
        rollback_plan="",
        idempotency_key="stage",
    )
    promotion.decide(services, APPROVER, request.request_id, approve=True, comment="")
    assert client.get_model_version(unique_name, "2").current_stage == "Production"


def test_webhook_receives_slack_compatible_json_for_each_step(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        make_model(client, unique_name, [0.80, 0.85])
        url = f"http://127.0.0.1:{server.server_port}/hook"
        services = Wiring(store, gateway, governance(webhook_url=url))
        request = open_request(services, unique_name)
        promotion.decide(services, APPROVER, request.request_id, approve=True, comment="")
    finally:
        server.shutdown()
    assert [m["flightdeck"]["event"] for m in received] == ["requested", "approved", "executed"]
    assert all(isinstance(m["text"], str) and unique_name in m["text"] for m in received)


def test_tampering_with_a_recorded_promotion_is_detected(
    client: MlflowClient, gateway: TrackingGateway, tmp_path: Path, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    path = tmp_path / "flightdeck.db"
    store = open_store(f"sqlite:///{path}")
    services = Wiring(store, gateway, governance())
    request = open_request(services, unique_name)
    promotion.decide(services, APPROVER, request.request_id, approve=True, comment="")
    store.engine.dispose()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE audit_events SET actor = 'mallory' WHERE action = 'promotion.approved'")
    with store.read() as connection:
        check = audit.verify(connection)
    assert check.first_broken == 2 and "changed" in check.problem


# Every role against every write, through the service (not the UI): True = allowed.
PERMISSIONS = {
    "viewer": {"request": False, "approve": False, "override": False, "retry": False,
               "cancel_others": False, "execute_directly": False},
    "operator": {"request": True, "approve": False, "override": False, "retry": False,
                 "cancel_others": False, "execute_directly": False},
    "approver": {"request": True, "approve": True, "override": False, "retry": True,
                 "cancel_others": False, "execute_directly": False},
    "admin": {"request": True, "approve": True, "override": True, "retry": True,
              "cancel_others": True, "execute_directly": True},
}  # fmt: skip


@pytest.mark.parametrize("role", list(PERMISSIONS))
def test_every_role_against_every_write(
    role: str, client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.85, 0.80])  # v2 is worse: its gate fails
    strict = Gates(primary_metric="eval_f1", require_compatible_signature=False)
    services = Wiring(store, gateway, governance(default_gates=strict))
    actor = Identity(f"someone-{role}", False, role)
    counter = iter(range(100))

    def fresh() -> str:
        return open_request(services, unique_name, key=f"k{next(counter)}").request_id

    attempts: dict[str, Callable[[], object]] = {
        "request": lambda: promotion.request_promotion(
            services,
            actor,
            model=unique_name,
            version=2,
            target="challenger",
            reason="r",
            rollback_plan="",
            idempotency_key="mine",
        ),
        "approve": lambda: promotion.decide(services, actor, fresh(), approve=False, comment="no"),
        "override": lambda: promotion.decide(
            services, actor, fresh(), approve=True, comment="", override_reason="urgent"
        ),
        "retry": lambda: promotion.retry(services, actor, fresh()),
        "cancel_others": lambda: promotion.cancel(services, actor, fresh(), "not needed"),
        "execute_directly": lambda: promotion.execute_directly(
            services,
            actor,
            model=unique_name,
            version=2,
            target="champion",
            reason="urgent",
            idempotency_key="direct",
        ),
    }
    outcome = {}
    for action, attempt in attempts.items():
        try:
            attempt()
            outcome[action] = True
        except PermissionDenied:
            outcome[action] = False
        except PromotionError:  # allowed, but refused for another reason (nothing to retry)
            outcome[action] = True
        # clear the open request so the next action can open its own
        for open_one in promotion.list_requests(store, model=unique_name, statuses=("pending",)):
            promotion.cancel(services, Identity("ada", False, "admin"), open_one.request_id, "-")
    assert outcome == PERMISSIONS[role]


def test_an_open_drift_alarm_blocks_approval(
    monitored_model: str,
    client: MlflowClient,
    gateway: TrackingGateway,
    store: Store,
    tmp_path: Path,
) -> None:
    from datetime import date

    from services.monitoring import runs as monitoring
    from services.monitoring.drift import compute_drift
    from tests.conftest import monitoring_frame

    run = client.get_model_version(monitored_model, "1").run_id
    version = client.create_model_version(monitored_model, f"runs:/{run}/model", run_id=run)
    client.log_metric(run, "eval_f1", 0.9)
    version_number, reference = monitoring.reference_for(gateway, monitored_model, "champion")
    for day in (1, 2):  # two drifted batches in a row: red with the default thresholds
        start = datetime.combine(date(2026, 11, day), datetime.min.time(), tzinfo=UTC)
        monitoring.log_monitoring_run(
            gateway,
            model=monitored_model,
            version=version_number,
            alias="champion",
            window_start=start,
            window_end=start + timedelta(days=1),
            result=compute_drift(reference, monitoring_frame(300, seed=day, shift=3.0)),
        )
    services = Wiring(store, gateway, governance())
    request = open_request(services, monitored_model, version=int(version.version))

    drift_gate = evaluate_gates(services, request)[-1]
    assert drift_gate.name == "No open drift alarm" and not drift_gate.passed
    assert drift_gate.detail.startswith("red")
    with pytest.raises(PromotionError, match="No open drift alarm"):
        promotion.decide(services, APPROVER, request.request_id, approve=True, comment="")

    # A job id tag anyone could set on the version is not a retraining on record: still held.
    client.set_model_version_tag(monitored_model, version.version, "flightdeck.job_id", "job-7")
    assert not evaluate_gates(services, request)[-1].passed

    # A version a retraining made after the alarm began is the response to it: not held back.
    job = finished_retraining_job(store, tmp_path, monitored_model)
    client.set_model_version_tag(monitored_model, version.version, "flightdeck.job_id", job)
    retrained_gate = evaluate_gates(services, request)[-1]
    assert retrained_gate.passed
    assert f"retraining job {job[:8]} made version 2 after the alarm began on 2026-11-02" in (
        retrained_gate.detail
    )


def finished_retraining_job(store: Store, folder: Path, model: str) -> str:
    """A succeeded retraining job of ``model`` in the store, run by the real local engine (a
    trivial command); its id."""
    from services.retraining import jobs
    from services.retraining.local import LocalBackend

    backend = LocalBackend(folder / "jobs", grace_s=2.0)
    job = jobs.submit_retraining(
        store,
        backend,
        Identity("omar", True, "operator"),
        model=model,
        trigger="manual",
        params={},
        idempotency_key=f"finished-{model}",
        command_for=lambda _job_id: [sys.executable, "-c", "print('trained')"],
    )
    deadline = time.monotonic() + 30
    while job.is_active and time.monotonic() < deadline:
        time.sleep(0.1)
        jobs.refresh_jobs(store, backend)
        job = jobs.get_job(store, job.job_id)
    assert job.status == "succeeded", job
    return job.job_id
