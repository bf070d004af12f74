"""The audit log's anchor on a real MLflow server: deleting the newest events is detected.

Each test anchors in its own MLflow experiment, so tests sharing the session's server never see
each other's anchors. Tampering is done the way someone with database access would: straight
SQL on the SQLite file, behind the store's back.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.core.errors import AuditError
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess, free_port
from services.core.settings import PROJECT_ROOT, Settings
from services.governance import audit
from services.governance.audit_anchor import (
    HEAD_HASH_TAG,
    HEAD_SEQ_TAG,
    MATCHES,
    NOT_CHECKED,
    OTHER_LOG,
    REWRITTEN,
    TRUNCATED,
    AuditAnchor,
    BackgroundAnchoring,
    anchor_audit_head,
    check_anchor,
    open_audited_store,
)
from tests.audit_support import recompute_plain_chain

pytestmark = pytest.mark.integration

KEY = "integration-audit-key-" + "9" * 20
START = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


class Deployment:
    """One Flightdeck deployment's settings, store and anchor, against the session's server."""

    def __init__(self, settings: Settings, db: Path) -> None:
        self.settings = settings
        self.db = db
        self.anchor = AuditAnchor(TrackingGateway(settings), settings.audit_anchor_experiment)
        self.store = open_audited_store(settings, self.anchor)

    def append(self, n: int, actor: str = "omar") -> None:
        """``n`` audited writes, one transaction each, as the services make them."""
        for _ in range(n):
            with self.store.write() as connection:
                seq = len(audit.events(connection)) + 1
                audit.append(
                    connection,
                    actor=actor,
                    action="promotion.requested",
                    subject=audit.subject_for("wine", "alias", "champion"),
                    details={"version": seq},
                    now=START + timedelta(minutes=seq),
                )

    def settle(self) -> None:
        """Wait for the background anchoring the writes started."""
        hook = self.store.after_audit_commit
        assert isinstance(hook, BackgroundAnchoring)
        assert hook.wait(60), "the background anchoring did not finish"

    def anchored_seq(self) -> int:
        """What MLflow holds, read by a fresh anchor (no memory of this process)."""
        fresh = AuditAnchor(TrackingGateway(self.settings), self.settings.audit_anchor_experiment)
        head = fresh.read()
        assert head is not None
        return head.seq

    def sql(self, statement: str, *params: object) -> None:
        with sqlite3.connect(self.db) as connection:
            connection.execute(statement, params)

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``python -m jobs.audit`` as a person runs it against this deployment."""
        return subprocess.run(
            [sys.executable, "-m", "jobs.audit", *args],
            cwd=PROJECT_ROOT,
            env={**os.environ, **self.environment, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    @property
    def environment(self) -> dict[str, str]:
        values = {
            "MLFLOW_TRACKING_URI": self.settings.tracking_uri,
            "FLIGHTDECK_STORE_URL": self.settings.store_url,
            "FLIGHTDECK_AUDIT_ANCHOR_EXPERIMENT": self.settings.audit_anchor_experiment,
            "FLIGHTDECK_HTTP_MAX_RETRIES": "0",
        }
        if self.settings.audit_key:
            values["FLIGHTDECK_AUDIT_KEY"] = self.settings.audit_key
        return values


@pytest.fixture
def deploy(
    tmp_path: Path,
    mlflow_server: ServerProcess,
    unique_name: str,
    settings_for: Callable[..., Settings],
) -> Iterator[Callable[..., Deployment]]:
    made: list[Deployment] = []

    def build(uri: str = mlflow_server.url, **env: str) -> Deployment:
        db = tmp_path / f"fd-{len(made)}.db"
        settings = settings_for(
            uri,
            FLIGHTDECK_STORE_URL=f"sqlite:///{db}",
            FLIGHTDECK_AUDIT_ANCHOR_EXPERIMENT=unique_name,
            FLIGHTDECK_HTTP_MAX_RETRIES="0",
            **env,
        )
        made.append(Deployment(settings, db))
        return made[-1]

    yield build
    for deployment in made:
        deployment.store.engine.dispose()


def test_truncating_the_newest_events_is_reported_by_jobs_audit_verify(
    deploy: Callable[..., Deployment],
) -> None:
    fd = deploy()
    fd.append(5)
    fd.settle()
    assert fd.anchored_seq() == 5  # every audited write moved the anchor
    fd.sql("DELETE FROM audit_events WHERE seq > 3")
    with fd.store.read() as connection:
        assert audit.verify(connection).intact  # the chain alone cannot see it

    result = fd.cli("verify")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Audit log broken: the log ends at event 3 but event 5 was anchored on " in result.stdout
    assert "events 4..5 were removed." in result.stdout


def test_an_intact_anchored_log_verifies_with_exit_0(deploy: Callable[..., Deployment]) -> None:
    fd = deploy()
    fd.append(3)
    fd.settle()
    result = fd.cli("verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Audit log intact: 3 events checked. Anchor: event 3 matches")


def test_deleting_every_event_is_detected(deploy: Callable[..., Deployment]) -> None:
    fd = deploy()
    fd.append(3)
    fd.settle()
    fd.sql("DELETE FROM audit_events")
    check = check_anchor(fd.store, fd.anchor)
    assert check.outcome == TRUNCATED
    assert "the log ends at event 0 but event 3 was anchored" in check.message
    assert "events 1..3 were removed" in check.message


def test_deleting_only_the_last_event_names_it(deploy: Callable[..., Deployment]) -> None:
    fd = deploy()
    fd.append(2)
    fd.settle()
    fd.sql("DELETE FROM audit_events WHERE seq = 2")
    check = check_anchor(fd.store, fd.anchor)
    assert check.broken
    assert check.message.endswith("event 2 was removed")


def test_the_anchor_never_moves_back(deploy: Callable[..., Deployment]) -> None:
    fd = deploy()
    fd.append(5)
    fd.settle()
    fd.sql("DELETE FROM audit_events WHERE seq > 2")
    fresh = AuditAnchor(TrackingGateway(fd.settings), fd.settings.audit_anchor_experiment)
    result = anchor_audit_head(fd.store, fresh)
    assert not result.moved
    assert result.head is not None and result.head.seq == 5
    assert fd.anchored_seq() == 5


def test_the_anchor_is_not_moved_past_a_log_that_no_longer_matches_it(
    deploy: Callable[..., Deployment],
) -> None:
    fd = deploy()
    fd.append(3)
    fd.settle()
    # Remove event 3, then let the application write on: the log grows past the anchor again,
    # but its event 3 is not the anchored one. Moving on would launder the deletion.
    fd.sql("DELETE FROM audit_events WHERE seq = 3")
    fresh = AuditAnchor(TrackingGateway(fd.settings), fd.settings.audit_anchor_experiment)
    fd.store.after_audit_commit = None
    fd.append(3, actor="mallory")
    with pytest.raises(
        AuditError, match=r"event 3, anchored on .* no longer has its anchored hash"
    ):
        anchor_audit_head(fd.store, fresh)
    assert fd.anchored_seq() == 3
    check = check_anchor(fd.store, fresh)
    assert check.outcome == REWRITTEN
    assert "event 3 does not have the hash anchored on" in check.message


def test_a_keyed_log_recomputed_whole_without_the_key_is_caught_by_the_anchor(
    deploy: Callable[..., Deployment],
) -> None:
    fd = deploy(FLIGHTDECK_AUDIT_KEY=KEY)
    fd.append(4)
    fd.settle()
    # Every event rewritten as a plain SHA-256 chain: a valid unkeyed log, as if no key had
    # ever been configured. Only the anchor (which names the log by event 1's hash, and holds
    # event 4's) gives it away.
    recompute_plain_chain(fd.db, 2, mark_plain=True, actor="mallory")
    recompute_plain_chain(fd.db, 1, mark_plain=True)
    with fd.store.read() as connection:
        assert audit.verify(connection).intact
    result = fd.cli("verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Audit log broken: the anchor in MLflow experiment" in result.stdout
    assert "this log was rewritten from its first event" in result.stdout


def test_verify_with_mlflow_unreachable_says_the_anchor_was_not_checked(
    deploy: Callable[..., Deployment],
) -> None:
    fd = deploy()
    fd.append(2)
    fd.settle()
    result = fd.cli("verify", MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("Audit log chain intact: 2 events checked. Anchor not checked:")
    assert "Events removed from the end cannot be ruled out." in result.stdout


def test_a_log_never_anchored_is_not_reported_intact(deploy: Callable[..., Deployment]) -> None:
    fd = deploy()
    fd.store.after_audit_commit = None
    fd.append(2)
    check = check_anchor(fd.store, fd.anchor)
    assert check.outcome == NOT_CHECKED
    assert "no anchor for the log was found" in check.message


def test_writes_never_wait_for_mlflow_and_none_is_lost_when_it_hangs(
    deploy: Callable[..., Deployment],
) -> None:
    with socket.socket() as black_hole:  # accepts connections, never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        port = black_hole.getsockname()[1]
        fd = deploy(f"http://127.0.0.1:{port}", FLIGHTDECK_HTTP_TIMEOUT="3")
        started = time.monotonic()
        fd.append(3)
        took = time.monotonic() - started
        with fd.store.read() as connection:
            assert [e.seq for e in audit.events(connection)] == [1, 2, 3]
            assert audit.verify(connection).intact
        fd.settle()  # the anchoring gives up after the timeout and logs it
    assert took < 2.0, f"three writes took {took:.1f} s: they waited for MLflow"


def test_a_scheduler_pass_anchors_the_head(
    deploy: Callable[..., Deployment], tmp_path: Path
) -> None:
    fd = deploy()
    fd.store.after_audit_commit = None
    fd.append(4)
    quiet = tmp_path / "flightdeck.toml"
    quiet.write_text("[roles]\nadmin = ['ada']\n", encoding="utf-8")  # no retraining policy
    result = subprocess.run(
        [sys.executable, "-m", "jobs.scheduler", "--once"],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            **fd.environment,
            "FLIGHTDECK_CONFIG": str(quiet),
            "FLIGHTDECK_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit anchor: anchored at event" in result.stderr
    with fd.store.read() as connection:  # the pass may add events (aliases it saw first)
        head = audit.head(connection)
        assert head is not None and head.seq >= 4
        head_hash = audit.hash_at(connection, head.seq)
    assert fd.anchored_seq() == head.seq
    tags = fd.anchor.gateway.get_run(fd.anchor.read().run_id).tags  # type: ignore[union-attr]
    assert (tags[HEAD_SEQ_TAG], tags[HEAD_HASH_TAG]) == (str(head.seq), head_hash)
    assert check_anchor(fd.store, fd.anchor).outcome == MATCHES


def test_a_second_deployment_in_the_same_experiment_is_refused_not_mistaken(
    deploy: Callable[..., Deployment],
) -> None:
    first = deploy()
    first.append(5)
    first.settle()
    second = deploy()  # same experiment, another store: a misconfiguration
    second.store.after_audit_commit = None
    second.append(2, actor="someone-else")
    with pytest.raises(AuditError, match="another deployment anchors there"):
        anchor_audit_head(second.store, second.anchor)
    assert first.anchored_seq() == 5  # the first deployment's anchor is untouched
    check = check_anchor(second.store, second.anchor)
    assert check.outcome == OTHER_LOG
    assert "FLIGHTDECK_AUDIT_ANCHOR_EXPERIMENT" in check.message
    assert check_anchor(first.store, first.anchor).outcome == MATCHES


def test_verify_of_a_keyed_log_without_its_key_says_it_cannot_be_verified(
    deploy: Callable[..., Deployment],
) -> None:
    fd = deploy(FLIGHTDECK_AUDIT_KEY=KEY)
    fd.append(2)
    fd.settle()

    missing = fd.cli("verify", FLIGHTDECK_AUDIT_KEY="")
    wrong = fd.cli("verify", FLIGHTDECK_AUDIT_KEY="another-key-" + "7" * 30)
    right = fd.cli("verify")

    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert missing.stdout.startswith("Audit log cannot be verified at event 1: event 1 is keyed")
    assert "no audit key is configured here" in missing.stdout
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "event 1 was keyed with another audit key" in wrong.stdout
    assert right.returncode == 0, right.stdout + right.stderr
    assert right.stdout.startswith("Audit log intact: 2 events checked (2 keyed).")
