"""Retraining jobs on a real SQLite store and the real local engine (trivial commands)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from services.core.errors import ConfigurationError, PermissionDenied, RetrainingError
from services.core.store import MIGRATIONS_DIR, Store, open_store
from services.governance import audit
from services.governance.auth import Identity
from services.governance.config import RetrainingPolicy, load_governance
from services.retraining import jobs
from services.retraining.base import Backend, EngineStatus
from services.retraining.jobs import RetrainingJob
from services.retraining.local import PID_FILE, LocalBackend
from services.retraining.policy_config import save_policy

pytestmark = pytest.mark.integration

OPERATOR = Identity("omar", False, "operator")
VIEWER = Identity("vic", False, "viewer")
MODELS = ("wine-classifier", "churn")
QUICK = [sys.executable, "-c", "print('trained')"]
CRASH = [sys.executable, "-c", "print('loading data'); raise SystemExit(3)"]
SLEEP = [sys.executable, "-c", "import time; print('sleeping', flush=True); time.sleep(60)"]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    engine = LocalBackend(tmp_path / "jobs", grace_s=2.0)
    yield engine
    for folder in (tmp_path / "jobs").glob("*"):  # leave no sleeper behind
        if not (folder / "exit_code").exists():
            engine.cancel(folder.name)


class UnreachableEngine:
    """A fake at the engine boundary: an engine whose submit fails as if it were down."""

    name = "local"

    def submit(self, job_id: str, command: Sequence[str], env: Mapping[str, str]) -> str:
        raise RetrainingError("connection refused by the engine at 127.0.0.1:4200")

    def status(self, ref: str) -> EngineStatus:
        raise AssertionError("never started, never asked")

    def logs(self, ref: str, tail: int = 200) -> str:
        return ""

    def cancel(self, ref: str) -> None:
        raise AssertionError("never started, never cancelled")


def submit(
    store: Store,
    backend: Backend,
    command: Sequence[str],
    *,
    model: str = "wine-classifier",
    key: str = "key-1",
    actor: Identity = OPERATOR,
) -> RetrainingJob:
    return jobs.submit_retraining(
        store,
        backend,
        actor,
        model=model,
        trigger="manual",
        params={"max_depth": 4},
        idempotency_key=key,
        command_for=lambda _job_id: command,
        known_models=MODELS,
    )


def wait_done(store: Store, backend: LocalBackend, job_id: str) -> RetrainingJob:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        jobs.refresh_jobs(store, backend)
        job = jobs.get_job(store, job_id)
        if not job.is_active:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still active")


def actions(store: Store) -> list[str]:
    with store.read() as connection:
        return [event.action for event in audit.events(connection)]


def test_operator_submit_records_starts_and_audits_a_job(
    store: Store, backend: LocalBackend
) -> None:
    job = submit(store, backend, QUICK)

    assert (job.status, job.engine, job.engine_ref) == ("running", "local", job.job_id)
    assert job.requested_by == "omar" and job.params == {"max_depth": 4}
    assert job.started_at is not None
    done = wait_done(store, backend, job.job_id)
    assert (done.status, done.exit_code) == ("succeeded", 0)
    assert jobs.job_log(backend, done) == "trained"
    assert actions(store) == ["retraining.requested", "retraining.started", "retraining.succeeded"]
    with store.read() as connection:
        assert audit.verify(connection).intact


def test_second_submit_while_running_is_told_already_running(
    store: Store, backend: LocalBackend
) -> None:
    first = submit(store, backend, SLEEP, key="first")

    with pytest.raises(RetrainingError, match="already running"):
        submit(store, backend, SLEEP, key="second")

    assert [j.job_id for j in jobs.list_jobs(store, "wine-classifier")] == [first.job_id]


def test_same_idempotency_key_returns_the_same_job(store: Store, backend: LocalBackend) -> None:
    first = submit(store, backend, SLEEP, key="same")
    second = submit(store, backend, SLEEP, key="same")

    assert second.job_id == first.job_id
    assert len(jobs.list_jobs(store)) == 1
    assert actions(store).count("retraining.requested") == 1


def test_viewer_may_not_trigger_retraining(store: Store, backend: LocalBackend) -> None:
    with pytest.raises(PermissionDenied) as denied:
        submit(store, backend, QUICK, actor=VIEWER)

    assert denied.value.missing_role == "operator"
    assert jobs.list_jobs(store) == []


def test_unreachable_engine_records_a_failed_job_never_started(store: Store) -> None:
    with pytest.raises(RetrainingError, match="could not start the job"):
        submit(store, UnreachableEngine(), QUICK)

    [job] = jobs.list_jobs(store)
    assert (job.status, job.engine_ref, job.started_at) == ("failed", None, None)
    assert "connection refused" in job.status_reason
    assert actions(store) == ["retraining.requested", "retraining.failed"]


def test_crash_is_recorded_failed_with_exit_code_and_log_tail(
    store: Store, backend: LocalBackend
) -> None:
    job = submit(store, backend, CRASH)

    done = wait_done(store, backend, job.job_id)

    assert (done.status, done.exit_code) == ("failed", 3)
    assert "code 3" in done.status_reason and "loading data" in done.status_reason
    assert actions(store)[-1] == "retraining.failed"


def test_job_killed_while_dashboard_was_down_is_lost_at_startup(
    store: Store, backend: LocalBackend
) -> None:
    job = submit(store, backend, SLEEP)
    folder = backend.folder(job.job_id)
    deadline = time.monotonic() + 30
    while "sleeping" not in backend.logs(job.job_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(int((folder / PID_FILE).read_text().split()[0]), signal.SIGKILL)
    time.sleep(0.2)

    changed = jobs.mark_lost_at_startup(store, backend)

    assert [j.job_id for j in changed] == [job.job_id]
    assert jobs.get_job(store, job.job_id).status == "lost"
    assert actions(store)[-1] == "retraining.lost"


def test_operator_cancel_stops_the_job_and_frees_the_model(
    store: Store, backend: LocalBackend
) -> None:
    job = submit(store, backend, SLEEP, key="to-cancel")

    cancelled = jobs.cancel_retraining(store, backend, OPERATOR, job.job_id, "wrong data")

    assert cancelled.status == "cancelled"
    assert jobs.refresh_jobs(store, backend) == []
    assert actions(store)[-2:] == ["retraining.cancel_requested", "retraining.cancelled"]
    assert submit(store, backend, QUICK, key="after-cancel").status == "running"


@pytest.mark.parametrize("model", ["", "  ", "no-such-model"])
def test_invalid_model_is_refused_before_anything_is_recorded(
    store: Store, backend: LocalBackend, model: str
) -> None:
    with pytest.raises(RetrainingError):
        submit(store, backend, QUICK, model=model)

    assert jobs.list_jobs(store) == []


def test_twenty_simultaneous_clicks_start_one_job(store: Store, backend: LocalBackend) -> None:
    def click(i: int) -> str:
        try:
            return submit(store, backend, SLEEP, key=f"click-{i}").job_id
        except RetrainingError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(click, range(20)))

    [job] = jobs.list_jobs(store)
    assert outcomes.count(job.job_id) == 1
    assert sum("already running" in outcome for outcome in outcomes) == 19


def test_cancelling_a_finished_job_is_refused(store: Store, backend: LocalBackend) -> None:
    job = wait_done(store, backend, submit(store, backend, QUICK).job_id)

    with pytest.raises(RetrainingError, match="nothing to cancel"):
        jobs.cancel_retraining(store, backend, OPERATOR, job.job_id)


def test_viewer_may_not_cancel(store: Store, backend: LocalBackend) -> None:
    job = submit(store, backend, SLEEP)

    with pytest.raises(PermissionDenied):
        jobs.cancel_retraining(store, backend, VIEWER, job.job_id)

    assert jobs.get_job(store, job.job_id).status == "running"


def store_at_revision(url: str, revision: str) -> Store:
    """A store whose schema stops at an older migration, as an earlier Flightdeck left it."""
    old = Store(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with old.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return old


def write_event_as_before_0005(old: Store, scratch_dir: Path, **fields: str) -> None:
    """An event as Flightdeck wrote it before revision 0005_audit_keys: plain SHA-256, no
    scheme column.

    It is made by today's code in a scratch store (an unkeyed event hashes the same way as
    before) and copied without the columns 0005_audit_keys added.
    """
    scratch = open_store(f"sqlite:///{scratch_dir / 'scratch.db'}")
    with scratch.write() as connection:
        event = audit.append(connection, **fields)
    scratch.engine.dispose()
    with old.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO audit_events (seq, at, actor, action, subject, request_id, details, "
                "prev_hash, hash) VALUES (:seq, :at, :actor, :action, :subject, NULL, :details, "
                ":prev_hash, :hash)"
            ),
            {
                "seq": event.seq,
                "at": event.at,
                "actor": event.actor,
                "action": event.action,
                "subject": event.subject,
                "details": "{}",
                "prev_hash": event.prev_hash,
                "hash": event.hash,
            },
        )


def test_a_store_at_revision_0001_is_upgraded_keeping_its_audit_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = store_at_revision(url, "0001")
    write_event_as_before_0005(
        old, tmp_path, actor="ada", action="promotion.requested", subject="model:m"
    )
    old.engine.dispose()

    upgraded = open_store(url)

    assert "retraining_jobs" in sa.inspect(upgraded.engine).get_table_names()
    with upgraded.read() as connection:
        assert [e.action for e in audit.events(connection)] == ["promotion.requested"]
        assert audit.verify(connection).intact
    assert jobs.list_jobs(upgraded) == []
    upgraded.engine.dispose()


def test_an_unkeyed_log_from_before_0005_verifies_and_continues_keyed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = store_at_revision(url, "0004")
    write_event_as_before_0005(
        old, tmp_path, actor="ada", action="promotion.requested", subject="model:m"
    )
    old.engine.dispose()

    upgraded = open_store(url, audit_key="a-key-configured-after-the-upgrade-" + "0" * 8)
    with upgraded.write() as connection:
        audit.append(connection, actor="ben", action="promotion.approved", subject="model:m")
    with upgraded.read() as connection:
        events = audit.events(connection)
        check = audit.verify(connection)
    assert [e.scheme for e in events] == [audit.PLAIN, audit.KEYED]
    assert check.intact and check.events == 2 and check.keyed == 1
    upgraded.engine.dispose()


def test_a_store_at_revision_0002_keeps_its_jobs_through_0003(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = store_at_revision(url, "0002")
    with old.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO retraining_jobs (id, model, engine, trigger, requested_by, params, "
                "status, created_at, status_reason, idempotency_key) VALUES ('j1', 'm', 'local', "
                "'manual', 'omar', '{}', 'succeeded', '2026-11-01 00:00:00', '', 'k1')"
            )
        )
    old.engine.dispose()

    upgraded = open_store(url)

    [job] = jobs.list_jobs(upgraded)
    assert (job.job_id, job.status, job.outcome, job.promotion_request_id) == (
        "j1",
        "succeeded",
        None,
        None,
    )
    assert "policy_decisions" in sa.inspect(upgraded.engine).get_table_names()
    upgraded.engine.dispose()


def test_cancel_while_the_engine_is_starting_the_job_stops_it(store: Store, tmp_path: Path) -> None:
    class CancelledWhileStarting(LocalBackend):
        """The real local engine; someone cancels the job while submit is under way."""

        def submit(self, job_id: str, command: Sequence[str], env: Mapping[str, str]) -> str:
            ref = super().submit(job_id, command, env)
            jobs.cancel_retraining(store, self, OPERATOR, job_id, "changed my mind")
            return ref

    engine = CancelledWhileStarting(tmp_path / "jobs", grace_s=2.0)

    job = submit(store, engine, SLEEP)

    assert (job.status, job.engine_ref) == ("cancelled", job.job_id)
    assert engine.status(job.job_id).state == "cancelled"
    assert "retraining.started" not in actions(store)


def test_saving_a_policy_is_for_admins_audited_and_keeps_the_file_valid(
    store: Store, tmp_path: Path
) -> None:
    config = tmp_path / "flightdeck.toml"
    config.write_text(
        "# roles and more\n[roles]\nadmin = ['ada']\n\n[retraining.default]\ncooldown_hours = 12\n"
    )
    admin = Identity("ada", False, "admin")
    with pytest.raises(PermissionDenied):
        save_policy(config, store, OPERATOR, "wine", RetrainingPolicy(drift_red_batches=2))
    with pytest.raises(ConfigurationError, match="only be on for a target other than"):
        save_policy(config, store, admin, "wine", RetrainingPolicy(auto_approve=True))

    saved = save_policy(
        config, store, admin, "wine", RetrainingPolicy(drift_red_batches=2, cooldown_hours=12)
    )

    assert saved.drift_red_batches == 2
    text = config.read_text()
    assert text.startswith("# roles and more")
    assert "[retraining.models.wine]\ndrift_red_batches = 2\n" in text  # only what differs
    assert load_governance(config).retraining_for("wine") == saved
    with store.read() as connection:
        [event] = audit.events(connection, actions=["policy.changed"])
    assert (event.actor, event.subject) == ("ada", "model:wine")
    assert event.details["before"]["drift_red_batches"] == 0
    assert event.details["after"]["drift_red_batches"] == 2
