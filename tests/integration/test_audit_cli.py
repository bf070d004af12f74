"""``python -m jobs.audit`` as a person runs it: a real process against a real SQLite store and
the session's real MLflow server, which holds the log's anchor (an experiment per test)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT, Settings
from services.core.store import open_store
from services.governance import audit
from services.governance.audit_anchor import AuditAnchor, anchor_audit_head

pytestmark = pytest.mark.integration

Runner = Callable[..., subprocess.CompletedProcess[str]]
"""``run_cli(store_url, data_dir, *args)``: the CLI's process, done."""


@pytest.fixture
def anchor_env(mlflow_server: ServerProcess, unique_name: str) -> dict[str, str]:
    """Where this test's anchor lives: the session's server, an experiment of its own."""
    return {
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "FLIGHTDECK_AUDIT_ANCHOR_EXPERIMENT": unique_name,
    }


@pytest.fixture
def run_cli(anchor_env: dict[str, str]) -> Runner:
    def run(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(url, tmp_path, anchor_env, *args)

    return run


def _run(
    url: str, tmp_path: Path, anchor_env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **anchor_env,
        "FLIGHTDECK_STORE_URL": url,
        "FLIGHTDECK_DATA_DIR": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "jobs.audit", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def db(tmp_path: Path, anchor_env: dict[str, str], settings_for: Callable[..., Settings]) -> Path:
    """A store with three events, anchored: two about "wine quality", one about
    "wine-classifier"."""
    path = tmp_path / "fd.db"
    store = open_store(f"sqlite:///{path}")
    with store.write() as connection:
        audit.append(
            connection,
            actor="omar",
            action="promotion.requested",
            subject=audit.subject_for("wine quality", "alias", "champion"),
            request_id="req-1",
            details={"version": 3, "reason": "better f1"},
        )
        audit.append(
            connection,
            actor="ben",
            action="promotion.approved",
            subject=audit.subject_for("wine quality", "alias", "champion"),
            request_id="req-1",
            details={"comment": "ok"},
        )
        audit.append(
            connection,
            actor="mlflow",
            action="alias.external_change",
            subject=audit.subject_for("wine-classifier", "alias", "champion"),
            details={"from": 1, "to": 2},
        )
    settings = settings_for(
        anchor_env["MLFLOW_TRACKING_URI"],
        FLIGHTDECK_AUDIT_ANCHOR_EXPERIMENT=anchor_env["FLIGHTDECK_AUDIT_ANCHOR_EXPERIMENT"],
    )
    anchor = AuditAnchor(TrackingGateway(settings), settings.audit_anchor_experiment)
    assert anchor_audit_head(store, anchor).moved
    store.engine.dispose()
    return path


def test_verify_reports_an_intact_log_and_exits_0(
    db: Path, tmp_path: Path, run_cli: Runner
) -> None:
    result = run_cli(f"sqlite:///{db}", tmp_path, "verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(
        "Audit log intact: 3 events checked. Anchor: event 3 matches the anchor of "
    )


def test_verify_names_the_tampered_event_and_exits_1(
    db: Path, tmp_path: Path, run_cli: Runner
) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE audit_events SET actor = 'ada' WHERE seq = 2")
    result = run_cli(f"sqlite:///{db}", tmp_path, "verify")
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == (
        "Audit log broken at event 2: event 2 was changed after it was recorded. 2 events checked."
    )


def test_verify_of_a_new_store_creates_it_and_is_intact(tmp_path: Path, run_cli: Runner) -> None:
    result = run_cli(f"sqlite:///{tmp_path / 'new' / 'fd.db'}", tmp_path, "verify")
    assert result.returncode == 0, result.stderr
    assert "Audit log intact: 0 events checked. Anchor: the log is empty" in result.stdout


def test_anchor_command_anchors_the_newest_event_once(tmp_path: Path, run_cli: Runner) -> None:
    url = f"sqlite:///{tmp_path / 'fd.db'}"
    store = open_store(url)
    with store.write() as connection:
        audit.append(connection, actor="ada", action="policy.edited", subject="model:m")
    store.engine.dispose()
    first = run_cli(url, tmp_path, "anchor")
    assert first.returncode == 0, first.stderr
    assert "Anchored the audit log at event 1." in first.stdout
    again = run_cli(url, tmp_path, "anchor")
    assert "The anchor already holds event 1" in again.stdout


def test_an_unusable_store_exits_2_without_leaking_the_password(
    tmp_path: Path, run_cli: Runner
) -> None:
    result = run_cli("postgresql+psycopg2://u:secret@127.0.0.1:9/x", tmp_path, "verify")
    assert result.returncode == 2
    assert "application store" in result.stderr
    assert "secret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_show_prints_the_newest_events_as_a_table(
    db: Path, tmp_path: Path, run_cli: Runner
) -> None:
    result = run_cli(f"sqlite:///{db}", tmp_path, "show")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "Seq",
        "Time",
        "(UTC)",
        "Actor",
        "Action",
        "Subject",
        "Request",
        "Details",
    ]
    assert [line.split()[0] for line in lines[2:]] == ["1", "2", "3"]
    assert "omar" in lines[2] and "promotion.requested" in lines[2] and "req-1" in lines[2]
    assert '{"reason":"better f1","version":3}' in lines[2]
    assert "model:wine-classifier/alias:champion" in lines[4]


def test_show_filters_by_exact_model_and_limits_to_the_newest(
    db: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(f"sqlite:///{db}", tmp_path, "show", "--model", "wine quality", "--limit", "1")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[2:]
    assert len(rows) == 1
    assert rows[0].split()[0] == "2"
    assert "promotion.approved" in rows[0]


def test_show_says_so_when_nothing_matches(db: Path, tmp_path: Path, run_cli: Runner) -> None:
    result = run_cli(f"sqlite:///{db}", tmp_path, "show", "--model", "wine")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "No audit events about model wine."


def test_show_rejects_a_limit_below_1(db: Path, tmp_path: Path, run_cli: Runner) -> None:
    result = run_cli(f"sqlite:///{db}", tmp_path, "show", "--limit", "0")
    assert result.returncode == 2
    assert "must be 1 or more" in result.stderr
