"""Closing the loop and the scheduler, for real: the local engine runs ``jobs.train`` against a
real MLflow server, the gates judge the new version, and a promotion request opens (or not).

Each test trains its own copy of the diabetes demo model (``champion_model``), so the
session's demo models keep their versions.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from services.core.conventions import (
    CHALLENGER,
    CHAMPION,
    CHAMPION_METRIC_PREFIX,
    COMPARED_WITH_TAG,
    COMPARISON_ARTIFACT,
    FAILURE_TAG,
)
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.core.store import Store
from services.core.wiring import Wiring
from services.governance import audit, promotion
from services.governance.auth import Identity
from services.governance.config import parse_governance
from services.retraining.engines import training_command
from services.retraining.jobs import (
    RetrainingJob,
    get_job,
    list_jobs,
    mark_lost_at_startup,
    submit_retraining,
)
from services.retraining.local import PID_FILE, LocalBackend, process_alive
from services.retraining.loop import POLICY_APPROVER, follow_jobs
from services.retraining.policy import BLOCKED, FIRED
from services.retraining.scheduler import SCHEDULER, recent_decisions, run_policies
from tests.conftest import copy_gates

pytestmark = pytest.mark.integration

OPERATOR = Identity("omar", True, "operator")


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "jobs", grace_s=2.0)


@dataclass
class Setup:
    """One test's retraining: its store, its local engine and its copy of the demo champion."""

    store: Store
    backend: LocalBackend
    model: str
    url: str
    settings_for: Any

    def services(self, **sections: Any) -> Wiring:
        """Wiring with the copy's gates (its primary metric), plus ``sections`` of config."""
        config = copy_gates(self.model)
        config["gates"]["models"][self.model].update(sections.pop("model_gates", {}))
        return Wiring(
            store=self.store,
            registry=TrackingGateway(self.settings_for(self.url)),
            governance=parse_governance({**config, **sections}),
        )

    def retrain(self, services: Wiring) -> str:
        """Start "Retrain now" as the operator; the job's id."""
        return submit_retraining(
            self.store,
            self.backend,
            OPERATOR,
            model=self.model,
            trigger="manual",
            params={},
            idempotency_key=f"test-{self.model}",
            command_for=training_command(self.model, "manual", OPERATOR.name),
            env={"MLFLOW_TRACKING_URI": self.url},
        ).job_id


@pytest.fixture
def setup(
    store: Store,
    backend: LocalBackend,
    champion_model: str,
    mlflow_server: ServerProcess,
    settings_for: Any,
) -> Setup:
    return Setup(store, backend, champion_model, mlflow_server.url, settings_for)


def judged(services: Wiring, backend: LocalBackend, job_id: str) -> RetrainingJob:
    """Follow the jobs until this one's outcome is recorded."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        follow_jobs(services, backend)
        job = get_job(services.store, job_id)
        if job.outcome:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not judged in time: {get_job(services.store, job_id)}")


def test_a_retrained_version_that_passes_the_gates_is_proposed_for_approval(setup: Setup) -> None:
    services = setup.services()
    job = judged(services, setup.backend, setup.retrain(services))

    assert job.status == "succeeded", job.status_reason
    assert job.new_version == 2
    assert job.outcome and "was proposed for @champion" in job.outcome
    request = promotion.get_request(setup.store, job.promotion_request_id or "")
    assert (request.status, request.version, request.target) == ("pending", 2, CHAMPION)
    assert request.requested_by == OPERATOR.name  # so four-eyes keeps omar from approving it
    assert request.expected_holder == 1
    assert "on the same held-out data" in request.reason
    assert re.search(r"\(\+0\.\d+\)", request.reason), request.reason  # strictly better

    # The training scored the champion on its own held-out rows and logged the comparison.
    client = MlflowClient(setup.url)
    run = client.get_run(job.mlflow_run_id or "")
    assert run.data.tags[COMPARED_WITH_TAG] == "1"
    assert f"{CHAMPION_METRIC_PREFIX}eval_rmse" in run.data.metrics
    comparison = json.loads(
        Path(client.download_artifacts(run.info.run_id, COMPARISON_ARTIFACT)).read_text()
    )
    assert comparison["champion_version"] == 1
    assert set(comparison["metrics"]["eval_rmse"]) == {"champion", "challenger"}

    with setup.store.read() as connection:
        actions = [e.action for e in audit.events(connection)]
    assert actions.count("retraining.judged") == 1
    assert "promotion.requested" in actions

    # Judging again changes nothing: one request per job.
    follow_jobs(services, setup.backend)
    assert len(promotion.list_requests(setup.store)) == 1


def test_a_version_failing_a_gate_is_not_proposed_and_the_job_says_why(setup: Setup) -> None:
    services = setup.services(model_gates={"min_improvement": 0.5})
    job = judged(services, setup.backend, setup.retrain(services))

    assert job.status == "succeeded"
    assert job.promotion_request_id is None
    assert job.outcome and "was not proposed" in job.outcome
    assert "eval_rmse improves by at least 0.5 failed" in job.outcome
    assert promotion.list_requests(setup.store) == []


def test_auto_approval_moves_a_non_production_alias_without_a_person(setup: Setup) -> None:
    services = setup.services(
        retraining={"default": {"promote_to": CHALLENGER, "auto_approve": True}}
    )
    job = judged(services, setup.backend, setup.retrain(services))

    request = promotion.get_request(setup.store, job.promotion_request_id or "")
    assert request.status == "executed"
    assert [d.decided_by for d in request.decisions] == [POLICY_APPROVER]
    client = MlflowClient(setup.url)
    assert client.get_model_version_by_alias(setup.model, CHALLENGER).version == "2"
    assert client.get_model_version_by_alias(setup.model, CHAMPION).version == "1"


def test_the_scheduler_fires_once_per_cause_and_audits_what_its_guards_block(setup: Setup) -> None:
    services = setup.services(
        retraining={"models": {setup.model: {"schedule": "* * * * *", "cooldown_hours": 24}}}
    )
    backend = setup.backend
    env = {"MLFLOW_TRACKING_URI": setup.url}
    now = datetime.now(UTC).replace(second=30, microsecond=0)

    first = run_policies(services, backend, env, last_check=now - timedelta(minutes=1), now=now)
    assert [(d.model, d.trigger, d.outcome) for d in first] == [(setup.model, "schedule", FIRED)]
    [job] = list_jobs(setup.store, setup.model)
    assert (job.trigger, job.requested_by) == ("schedule", SCHEDULER.name)

    again = run_policies(services, backend, env, last_check=now - timedelta(minutes=1), now=now)
    assert again == []  # the same tick is decided once

    later = now + timedelta(minutes=1)
    blocked = run_policies(services, backend, env, last_check=now, now=later)
    assert [d.outcome for d in blocked] == [BLOCKED]
    assert "cooldown of 24 h" in blocked[0].reason
    assert len(list_jobs(setup.store, setup.model)) == 1

    assert [d.outcome for d in recent_decisions(services)] == [BLOCKED, FIRED]
    with setup.store.read() as connection:
        actions = [e.action for e in audit.events(connection)]
    assert actions.count("policy.fired") == 1 and actions.count("policy.blocked") == 1
    judged(services, backend, job.job_id)  # let the job finish before the store goes


def test_a_job_killed_mid_run_is_lost_after_a_restart_and_its_run_ends_failed(
    setup: Setup, tmp_path: Path
) -> None:
    services = setup.services()
    backend = setup.backend
    job_id = setup.retrain(services)
    deadline = time.monotonic() + 60
    while "started in experiment" not in backend.logs(job_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int((backend.folder(job_id) / PID_FILE).read_text().split()[0])
    os.killpg(pid, signal.SIGKILL)  # kill -9: nothing in the job can record anything
    while time.monotonic() < deadline and process_alive(pid, None):
        time.sleep(0.05)

    restarted = LocalBackend(tmp_path / "jobs")  # Flightdeck starting again
    [lost] = mark_lost_at_startup(setup.store, restarted)
    assert (lost.job_id, lost.status) == (job_id, "lost")
    job = judged(services, restarted, job_id)

    assert job.outcome and "now marked FAILED" in job.outcome
    run = MlflowClient(setup.url).get_run(job.mlflow_run_id or "")
    assert run.info.status == "FAILED"
    assert run.data.tags[FAILURE_TAG].startswith(f"Retraining job {job_id[:8]} lost:")
