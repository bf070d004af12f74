"""The Admin page through AppTest: roles, gates, verifying the audit chain and the audit table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from services.core.gateway import TrackingGateway
from services.core.settings import PROJECT_ROOT, load_settings
from services.core.store import open_store
from services.governance import audit
from services.governance.audit_anchor import AuditAnchor, anchor_audit_head

APP = str(PROJECT_ROOT / "app.py")
ADMIN = "pages/admin.py"
HOSTILE_ACTOR = "<img src=x onerror=alert(1)> **bold**"


@pytest.fixture
def db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_env: str, unique_name: str
) -> Path:
    """A fresh store with three events, anchored in this test's own experiment, used by the
    app under test."""
    path = tmp_path / "fd.db"
    monkeypatch.setenv("FLIGHTDECK_STORE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("FLIGHTDECK_AUDIT_ANCHOR_EXPERIMENT", unique_name)
    monkeypatch.setenv("FLIGHTDECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLIGHTDECK_DEV_USER", "ada")
    monkeypatch.delenv("FLIGHTDECK_AUTH_HEADER", raising=False)
    monkeypatch.delenv("FLIGHTDECK_CONFIG", raising=False)
    st.cache_resource.clear()  # caches outlive an AppTest: each test opens its own store
    st.cache_data.clear()
    store = open_store(f"sqlite:///{path}")
    with store.write() as connection:
        audit.append(
            connection,
            actor="omar",
            action="promotion.requested",
            subject=audit.subject_for("wine quality", "alias", "champion"),
            request_id="req-1",
            details={"version": 3},
        )
        audit.append(
            connection,
            actor=HOSTILE_ACTOR,
            action="promotion.approved",
            subject=audit.subject_for("wine quality", "alias", "champion"),
            request_id="req-1",
            details={"comment": "[click](javascript:alert(1))"},
        )
        audit.append(
            connection,
            actor="mlflow",
            action="alias.external_change",
            subject=audit.subject_for("diabetes-regressor", "alias", "champion"),
            details={"from": 1, "to": 2},
        )
    settings = load_settings()
    anchor = AuditAnchor(TrackingGateway(settings), settings.audit_anchor_experiment)
    assert anchor_audit_head(store, anchor).moved
    store.engine.dispose()
    return path


def open_admin(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(ADMIN)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "error", "warning", "success", "title", "subheader")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


def audit_table(at: AppTest):  # type: ignore[no-untyped-def]
    return at.dataframe[-1].value


def test_page_shows_the_identity_roles_policy_and_gates(db: Path) -> None:
    at = open_admin()
    assert "**ada** · role **admin**" in texts(at)
    roles = at.dataframe[0].value.set_index("Role")
    assert list(roles.index) == ["viewer", "operator", "approver", "admin"]
    assert "ada" in roles.loc["admin", "Held by"]
    assert "omar" in roles.loc["operator", "Held by"]
    policy = at.dataframe[1].value.set_index("Setting")["Value"]
    assert policy["Approvals required"] == "1"
    gates = at.dataframe[2].value.set_index("Model")
    assert gates.loc["diabetes-regressor", "primary_metric"] == "eval_rmse"
    assert gates.loc["(default)", "primary_metric"] == "eval_f1"


def test_a_viewer_may_see_the_page(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Development mode's first choice; AppTest loses the sidebar's widgets after switch_page.
    monkeypatch.setenv("FLIGHTDECK_DEV_USER", "vic")
    at = open_admin()
    assert "**vic** · role **viewer**" in texts(at)
    assert len(audit_table(at)) == 3


def test_verify_reports_an_intact_chain(db: Path) -> None:
    at = open_admin()
    at.button(key="admin.verify").click().run()
    (success,) = at.success
    assert success.value.startswith("Intact: 3 events; event 3 matches the anchor of ")
    assert not at.error
    assert not at.warning


def test_verify_shows_events_removed_from_the_end(db: Path) -> None:
    at = open_admin()
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM audit_events WHERE seq = 3")
    at.button(key="admin.verify").click().run()
    assert not at.success
    (error,) = at.error
    assert error.value.startswith("Broken: the log ends at event 2 but event 3 was anchored on")
    assert "event 3 was removed" in error.value


def test_verify_names_the_broken_event_after_tampering(db: Path) -> None:
    at = open_admin()
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE audit_events SET details = '{\"version\":4}' WHERE seq = 1")
    at.button(key="admin.verify").click().run()
    assert not at.success
    (error,) = at.error
    assert error.value.startswith("Broken at event 1: event 1 was changed after it was recorded")


def test_audit_table_shows_events_newest_first_with_untrusted_text_verbatim(db: Path) -> None:
    at = open_admin()
    table = audit_table(at)
    assert table["Seq"].tolist() == ["3", "2", "1"]
    hostile = table.set_index("Seq").loc["2"]
    assert hostile["Actor"] == HOSTILE_ACTOR
    assert hostile["Details"] == '{"comment":"[click](javascript:alert(1))"}'
    assert "onerror" not in texts(at)  # never rendered as Markdown or HTML


def test_filters_narrow_the_table_and_land_in_the_url(db: Path) -> None:
    at = open_admin()
    at.text_input(key="admin.model").input("WINE").run()
    assert audit_table(at)["Seq"].tolist() == ["2", "1"]
    assert at.query_params["model"] == "WINE"
    at.selectbox(key="admin.action").select("promotion.requested").run()
    assert audit_table(at)["Seq"].tolist() == ["1"]
    assert at.query_params == {"model": "WINE", "action": "promotion.requested"}


def test_filters_from_a_shared_link_are_applied(db: Path) -> None:
    at = open_admin(model="diabetes", action="alias.external_change")
    assert at.text_input(key="admin.model").value == "diabetes"
    assert at.selectbox(key="admin.action").value == "alias.external_change"
    assert audit_table(at)["Seq"].tolist() == ["3"]


def test_no_match_says_so(db: Path) -> None:
    at = open_admin(model="no-such-model")
    assert "No audit events match." in texts(at)


def test_an_unusable_store_is_an_error_but_governance_still_shows(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTDECK_STORE_URL", "postgresql+psycopg2://u:secret@127.0.0.1:9/x")
    at = open_admin()
    (error,) = at.error
    assert "application store" in error.value
    assert "secret" not in error.value
    assert list(at.dataframe[0].value["Role"]) == ["viewer", "operator", "approver", "admin"]
