"""No promotion is ever stuck or lost: kill -9 at each step, timeouts after the server applied a
move, retries, expiry, legacy stages and rollback of any alias; against a real MLflow server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow import MlflowClient

from services.core.errors import (
    ConfigurationError,
    PermissionDenied,
    PromotionConflict,
    PromotionError,
)
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess, free_port
from services.core.settings import PROJECT_ROOT
from services.core.store import Store, open_store
from services.core.wiring import Wiring
from services.governance import alias_history, audit, promotion
from services.governance.auth import POLICY_SOURCE, Identity
from services.governance.config import Gates, Governance, RetrainingPolicy, parse_policy
from services.governance.requests import PromotionRequest
from tests.integration.promotion_crash import STEPS
from tests.integration.test_promotion import (
    APPROVER,
    OPERATOR,
    events_of,
    governance,
    make_model,
    open_request,
)

ADMIN = Identity("ada", True, "admin")
CONFIG = """
[roles]
admin = ["ada"]
approver = ["ben", "bea"]
operator = ["omar"]

[gates.default]
primary_metric = "eval_f1"
require_compatible_signature = false
block_on_drift_alarm = false
"""


@pytest.fixture
def process_env(mlflow_server: ServerProcess, tmp_path: Path) -> dict[str, str]:
    """The environment of a Flightdeck process (the approver's, then the control loop's) on one
    store: MLflow calls time out after 1 s with no retry, so an interrupted execution counts as
    stuck after 3 s."""
    config = tmp_path / "flightdeck.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "FLIGHTDECK_STORE_URL": f"sqlite:///{tmp_path / 'flightdeck.db'}",
        "FLIGHTDECK_CONFIG": str(config),
        "FLIGHTDECK_HTTP_TIMEOUT": "1",
        "FLIGHTDECK_HTTP_MAX_RETRIES": "0",
    }


def run_module(
    module: str, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def holder(client: MlflowClient, name: str, alias: str = "champion") -> int:
    return int(client.get_model_version_by_alias(name, alias).version)


def audited_holder(store: Store, name: str) -> int | None:
    """Where the audit log says ``@champion`` points: the last recorded move's version."""
    moves = alias_history.alias_history(store, name, "alias", "champion")
    return moves[-1].version if moves else 1  # make_model set v1 before Flightdeck looked


EXPECTED = {
    # step -> (status after the crash, status once the control loop started again)
    "mid_claim": ("pending", "pending"),
    "after_claim": ("executing", "failed"),
    "after_move": ("executing", "executed"),
    "before_outcome": ("executing", "executed"),
    "before_evidence": ("executed", "executed"),
}


@pytest.mark.parametrize("step", STEPS)
def test_kill_9_at_each_step_of_an_approval_ends_in_the_right_state_after_a_restart(
    step: str, client: MlflowClient, process_env: dict[str, str], unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85, 0.90])
    store = open_store(process_env["FLIGHTDECK_STORE_URL"])
    services = Wiring(store, TrackingGateway(_settings(process_env)), _governance(process_env))
    request = open_request(services, unique_name)

    crashed = run_module(
        "tests.integration.promotion_crash", [step, request.request_id, "ben"], process_env
    )
    assert crashed.returncode == -9, crashed.stderr  # killed at the planted step, not before
    after_crash, after_restart = EXPECTED[step]
    assert promotion.get_request(store, request.request_id).status == after_crash

    time.sleep(3.5)  # longer than the two MLflow calls an execution makes can take
    restarted = run_module("jobs.scheduler", ["--once"], process_env)
    assert restarted.returncode == 0, restarted.stderr

    resumed = promotion.get_request(store, request.request_id)
    assert resumed.status == after_restart, resumed.status_reason
    if after_restart == "executed":
        assert holder(client, unique_name) == 2
        tags = client.get_model_version(unique_name, "2").tags
        assert tags["flightdeck.request_id"] == request.request_id
        assert tags["flightdeck.approved_by"] == "ben"
        assert events_of(store, request.request_id).count("alias.moved") == 1
        assert events_of(store, request.request_id)[-1] == "model_card.logged"
    else:
        assert holder(client, unique_name) == 1
    assert audited_holder(store, unique_name) == holder(client, unique_name)
    verify = run_module("jobs.audit", ["verify"], process_env)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    if after_restart == "failed":  # an approver retries, and the move happens once
        assert promotion.retry(services, APPROVER, request.request_id).status == "executed"
        assert holder(client, unique_name) == 2
    elif after_restart == "pending":  # the approval was never recorded: it can be given again
        done = promotion.decide(services, APPROVER, request.request_id, approve=True, comment="")
        assert done.status == "executed" and holder(client, unique_name) == 2
    # Nothing blocks the target: a new request for it can be opened.
    follow_up = open_request(services, unique_name, version=3, key=f"{unique_name}-again")
    assert follow_up.status == "pending" and follow_up.expected_holder == 2
    store.engine.dispose()


def _settings(env: dict[str, str]) -> Any:
    from services.core.settings import load_settings

    return load_settings(env, secrets_path=Path(env["FLIGHTDECK_CONFIG"]).parent / "none.toml")


def _governance(env: dict[str, str]) -> Governance:
    from services.governance.config import load_governance

    return load_governance(Path(env["FLIGHTDECK_CONFIG"]))


# -- a timeout after the server applied the move ----------------------------------------------


class SlowAliasProxy:
    """A real HTTP proxy in front of MLflow that forwards every request, but answers an alias
    move only after ``delay_s``: the server has applied the move by then, the client gave up."""

    def __init__(self, upstream: str, delay_s: float) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_PATCH(self) -> None:
                self._forward()

            def do_DELETE(self) -> None:
                self._forward()

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = requests.request(
                    self.command, upstream + self.path, data=body, headers=headers, timeout=30
                )
                if self.command == "POST" and self.path.endswith("/registered-models/alias"):
                    proxy.delayed += 1
                    time.sleep(delay_s)
                try:
                    self.send_response(answer.status_code)
                    for key, value in answer.headers.items():
                        if key.lower() not in {
                            "transfer-encoding",
                            "content-encoding",
                            "connection",
                        }:
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer.content)))
                    self.end_headers()
                    self.wfile.write(answer.content)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args: Any) -> None:
                pass

        self.delayed = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_alias_proxy(mlflow_server: ServerProcess) -> Iterator[SlowAliasProxy]:
    proxy = SlowAliasProxy(mlflow_server.url, delay_s=2.5)
    yield proxy
    proxy.close()


def test_a_retry_after_a_timeout_that_reached_mlflow_finishes_the_request_as_executed(
    client: MlflowClient,
    store: Store,
    settings_for: Any,
    slow_alias_proxy: SlowAliasProxy,
    monkeypatch: pytest.MonkeyPatch,
    unique_name: str,
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    for variable in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.setenv(variable, "")  # restored after the test; the gateway sets them
    slow = TrackingGateway(
        settings_for(
            slow_alias_proxy.url, FLIGHTDECK_HTTP_TIMEOUT="1", FLIGHTDECK_HTTP_MAX_RETRIES="0"
        )
    )
    services = Wiring(store, slow, governance())
    request = open_request(services, unique_name)

    with pytest.raises(PromotionError, match="did not confirm the move"):
        promotion.decide(services, APPROVER, request.request_id, approve=True, comment="ok")
    assert slow_alias_proxy.delayed == 1
    assert promotion.get_request(store, request.request_id).status == "failed"
    assert holder(client, unique_name) == 2  # the server applied it all the same

    retried = promotion.retry(services, APPROVER, request.request_id)

    assert retried.status == "executed", retried.status_reason
    assert "Recovered" in retried.status_reason
    assert slow_alias_proxy.delayed == 1  # the retry saw the move done and did not move again
    (move,) = alias_history.alias_history(store, unique_name, "alias", "champion")
    assert (move.previous, move.version) == (1, 2)
    with store.read() as connection:
        assert audit.verify(connection).intact


# -- the reconciler, retry and expiry in-process --------------------------------------------------


def claimed(services: Wiring, name: str) -> PromotionRequest:
    """A request approved by a process that died right after its claim (status executing)."""

    class DiesBeforeMoving:
        """Stands in for a crash: the alias read right after the claim never returns."""

        def __getattr__(self, attribute: str) -> Any:
            return getattr(services.registry, attribute)

        def alias_holder(self, *args: Any) -> None:
            raise SystemExit("killed")

    request = open_request(services, name)
    crashing = Wiring(services.store, DiesBeforeMoving(), services.governance)  # type: ignore[arg-type]
    with pytest.raises(SystemExit):
        promotion.decide(crashing, APPROVER, request.request_id, approve=True, comment="")
    assert promotion.get_request(services.store, request.request_id).status == "executing"
    return request


def failed_request(
    client: MlflowClient, gateway: TrackingGateway, store: Store, name: str
) -> tuple[Wiring, PromotionRequest]:
    """A model and a request for its v2 that the reconciler marked failed after a crash."""
    make_model(client, name, [0.80, 0.85])
    services = Wiring(store, gateway, governance())
    request = claimed(services, name)
    promotion.reconcile(services, stuck_after=timedelta(0))
    assert promotion.get_request(store, request.request_id).status == "failed"
    return services, request


def test_reconcile_leaves_a_request_alone_while_its_execution_may_still_be_running(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    services = Wiring(store, gateway, governance())
    request = claimed(services, unique_name)

    assert promotion.reconcile(services, stuck_after=timedelta(minutes=5)) == []
    assert promotion.get_request(store, request.request_id).status == "executing"


def test_reconcile_marks_a_target_moved_by_someone_else_stale_naming_the_holder(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85, 0.90])
    services = Wiring(store, gateway, governance())
    request = claimed(services, unique_name)
    client.set_registered_model_alias(unique_name, "champion", "3")

    (resolved,) = promotion.reconcile(services, stuck_after=timedelta(0))

    assert resolved.request_id == request.request_id and resolved.status == "stale"
    assert "now points at version 3" in resolved.status_reason
    assert events_of(store, request.request_id)[-1] == "promotion.conflict"
    assert promotion.reconcile(services, stuck_after=timedelta(0)) == []  # once only


def test_two_reconcilers_at_once_record_one_outcome(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    services = Wiring(store, gateway, governance())
    request = claimed(services, unique_name)
    client.set_registered_model_alias(unique_name, "champion", "2")  # the move had landed
    barrier = threading.Barrier(2)

    def reconcile() -> list[PromotionRequest]:
        barrier.wait()
        return promotion.reconcile(services, stuck_after=timedelta(0))

    results: list[list[PromotionRequest]] = []
    threads = [threading.Thread(target=lambda: results.append(reconcile())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(r) for r in results) == [0, 1]
    actions = events_of(store, request.request_id)
    assert actions.count("alias.moved") == 1 and actions.count("model_card.logged") == 1


def test_a_retry_checks_the_gates_again(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    _, request = failed_request(client, gateway, store, unique_name)
    stricter = Wiring(
        store,
        gateway,
        governance(default_gates=Gates(min_improvement=0.5, require_compatible_signature=False)),
    )

    with pytest.raises(PromotionError, match="Failing gates block the retry"):
        promotion.retry(stricter, APPROVER, request.request_id)
    assert promotion.get_request(store, request.request_id).status == "failed"
    assert holder(client, unique_name) == 1


def test_a_failed_request_expires_like_a_pending_one_and_then_cannot_be_retried(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    services, request = failed_request(client, gateway, store, unique_name)
    later = datetime.now(UTC) + timedelta(hours=73)

    with pytest.raises(PromotionConflict, match="is expired, not failed"):
        promotion.retry(services, APPROVER, request.request_id, now=later)

    expired = promotion.get_request(store, request.request_id)
    assert expired.status == "expired" and expired.status_reason == "not retried in time"
    assert holder(client, unique_name) == 1
    assert open_request(services, unique_name, key="after-expiry").status == "pending"


def test_the_requester_may_cancel_a_failed_request_to_free_the_target(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    services, request = failed_request(client, gateway, store, unique_name)

    cancelled = promotion.cancel(services, OPERATOR, request.request_id, "wrong version")

    assert cancelled.status == "cancelled"
    assert open_request(services, unique_name, key="after-cancel").status == "pending"


# -- one person, one identity ---------------------------------------------------------------------


def test_ben_and_BEN_are_one_approver_when_two_approvals_are_required(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85])
    services = Wiring(store, gateway, governance(approvals_required=2))
    request = open_request(services, unique_name)
    promotion.decide(
        services, Identity("ben", True, "approver"), request.request_id, approve=True, comment=""
    )

    with pytest.raises(PromotionConflict, match="already decided"):
        promotion.decide(
            services,
            Identity(" BEN ", True, "approver"),
            request.request_id,
            approve=True,
            comment="",
        )
    pending = promotion.get_request(store, request.request_id)
    assert pending.status == "pending" and pending.approvers == ("ben",)
    assert holder(client, unique_name) == 1
    with pytest.raises(PermissionDenied, match="four-eyes"):
        promotion.decide(
            services,
            Identity("Omar", True, "approver"),
            request.request_id,
            approve=True,
            comment="",
        )
    done = promotion.decide(
        services, Identity("bea", True, "approver"), request.request_id, approve=True, comment=""
    )
    assert done.status == "executed" and done.approvers == ("ben", "bea")


def test_stored_names_are_folded_to_one_spelling_when_the_store_is_upgraded(tmp_path: Path) -> None:
    from tests.integration.test_retraining_jobs import store_at_revision

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = store_at_revision(url, "0003")
    now = datetime.now(UTC)
    with old.write() as connection:
        connection.execute(
            promotion.promotion_requests.insert().values(
                id="r" * 32,
                kind="promotion",
                model="m",
                version=2,
                target_kind="alias",
                target="champion",
                expected_holder=1,
                reason="r",
                rollback_plan="",
                requested_by="Omar",
                requested_at=now,
                expires_at=now + timedelta(hours=1),
                status="pending",
                status_reason="",
                updated_at=now,
                idempotency_key="k",
            )
        )
        for name in ("Ben", "BEN", "bea"):
            connection.execute(
                promotion.promotion_decisions.insert().values(
                    request_id="r" * 32,
                    decided_by=name,
                    decision="approve",
                    comment="",
                    decided_at=now,
                )
            )
    old.engine.dispose()

    upgraded = open_store(url)
    request = promotion.get_request(upgraded, "r" * 32)

    assert request.requested_by == "omar"
    assert request.approvers == ("ben", "bea")
    upgraded.engine.dispose()


# -- legacy stages -------------------------------------------------------------------------------


def stage_model(client: MlflowClient, name: str) -> None:
    """Three versions; v1 in Production, as a server that still uses stages has it."""
    make_model(client, name, [0.80, 0.85, 0.90])
    client.delete_registered_model_alias(name, "champion")
    client.transition_model_version_stage(name, "1", "Production")


def stage_of(client: MlflowClient, name: str, version: int) -> str:
    return str(client.get_model_version(name, str(version)).current_stage)


def test_promoting_into_production_archives_the_previous_holder_and_rolls_back(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    stage_model(client, unique_name)
    services = Wiring(store, gateway, governance(target="stage"))
    request = promotion.request_promotion(
        services, OPERATOR, model=unique_name, version=2, target="Production", reason="better",
        rollback_plan="back to v1", idempotency_key=unique_name,
    )  # fmt: skip
    assert request.expected_holder == 1

    promotion.decide(services, APPROVER, request.request_id, approve=True, comment="ok")

    assert [v.version for v in client.get_latest_versions(unique_name, ["Production"])] == ["2"]
    assert stage_of(client, unique_name, 1) == "Archived"
    assert alias_history.rollback_targets(services, unique_name) == {"Production": 1}
    rolled_back = promotion.execute_directly(
        services, ADMIN, model=unique_name, version=1, target="Production",
        reason="v2 misbehaves", idempotency_key=f"{unique_name}-rollback",
    )  # fmt: skip
    assert rolled_back.status == "executed"
    assert [v.version for v in client.get_latest_versions(unique_name, ["Production"])] == ["1"]
    assert stage_of(client, unique_name, 2) == "Archived"


def test_a_stage_moved_outside_flightdeck_is_detected_and_recorded(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    stage_model(client, unique_name)
    services = Wiring(store, gateway, governance(target="stage"))
    assert alias_history.detect_external_changes(services, unique_name) == []  # first sight
    client.transition_model_version_stage(
        unique_name, "3", "Production", archive_existing_versions=True
    )

    assert alias_history.detect_external_changes(services, unique_name) == ["Production"]
    move = alias_history.alias_history(store, unique_name, "stage", "Production")[-1]
    assert move.external and (move.previous, move.version) == (1, 3)
    assert alias_history.rollback_target(services, unique_name, "Production") == 1


def test_auto_approval_is_refused_for_production_as_for_champion(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    for target in ("champion", "Production"):
        with pytest.raises(ConfigurationError, match="production always needs a person"):
            parse_policy({"promote_to": target, "auto_approve": True}, RetrainingPolicy(), "r")
    stage_model(client, unique_name)
    services = Wiring(store, gateway, governance(target="stage"))
    request = promotion.request_promotion(
        services, OPERATOR, model=unique_name, version=2, target="Production", reason="retrained",
        rollback_plan="", idempotency_key=unique_name,
    )  # fmt: skip
    policy = Identity("flightdeck-policy", True, "approver", source=POLICY_SOURCE)

    with pytest.raises(PermissionDenied, match="production always needs a person"):
        promotion.decide(services, policy, request.request_id, approve=True, comment="auto")
    assert promotion.get_request(store, request.request_id).status == "pending"


# -- rollback of any alias ------------------------------------------------------------------------


def test_rollback_of_staging_rolls_back_staging_and_every_alias_is_a_target(
    client: MlflowClient, gateway: TrackingGateway, store: Store, unique_name: str
) -> None:
    make_model(client, unique_name, [0.80, 0.85, 0.90])
    client.set_registered_model_alias(unique_name, "staging", "2")
    services = Wiring(store, gateway, governance())
    alias_history.detect_external_changes(services, unique_name)
    moved = promotion.execute_directly(
        services, ADMIN, model=unique_name, version=3, target="staging", reason="try v3",
        idempotency_key=f"{unique_name}-1",
    )  # fmt: skip
    assert moved.status == "executed"

    assert alias_history.rollback_targets(services, unique_name) == {"staging": 2}
    choices = promotion.target_choices(
        services.governance, list(gateway.model_aliases(unique_name)), unique_name
    )
    assert {"champion", "challenger", "staging"} <= set(choices)
    assert "Production" not in choices
    policy_alias = governance(model_retraining={unique_name: RetrainingPolicy(promote_to="canary")})
    assert "canary" in promotion.target_choices(policy_alias, [], unique_name)
