"""What the Admin page and ``jobs.audit show`` render: governance tables and audit filters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.audit import format_table, printable
from services.core.gateway import TrackingGateway
from services.core.processes import free_port
from services.core.settings import Settings
from services.core.store import Store, open_store
from services.governance import admin, audit
from services.governance.audit_anchor import AuditAnchor
from services.governance.config import parse_governance

GOVERNANCE = parse_governance(
    {
        "roles": {"admin": ["ada"], "operator": ["omar", "group:data"], "viewer": ["vic"]},
        "promotion": {"webhook_url": "https://hooks.slack.com/services/T0/B0/SECRET-TOKEN"},
        "gates": {
            "default": {"primary_metric": "eval_auc", "min_improvement": 0.02},
            "models": {"zeta": {"block_on_drift_alarm": False}, "alpha": {"min_improvement": 1}},
        },
    }
)


def test_roles_table_lists_every_role_with_holders_and_powers() -> None:
    table = admin.roles_table(GOVERNANCE).set_index("Role")
    assert list(table.index) == ["viewer", "operator", "approver", "admin"]
    assert table.loc["operator", "Held by"] == "omar, group:data"
    assert table.loc["approver", "Held by"] == "nobody listed"
    assert table.loc["viewer", "Held by"] == "vic; and everyone not listed"
    assert table.loc["viewer", "May"] == "view models, runs and the audit log"
    assert "trigger retraining" in table.loc["operator", "May"]
    assert "approve or reject" not in table.loc["operator", "May"]
    assert "administer Flightdeck" in table.loc["admin", "May"]


def test_policy_table_never_shows_the_webhook_secret() -> None:
    table = admin.policy_table(GOVERNANCE)
    text = table.to_string()
    assert "SECRET-TOKEN" not in text
    assert "posted to hooks.slack.com" in text
    values = dict(zip(table["Setting"], table["Value"], strict=True))
    assert values["Approvals required"] == "1"
    assert values["Requests expire after"] == "72 h"
    defaults = admin.policy_table(parse_governance({})).set_index("Setting")["Value"]
    assert defaults["Notifications"] == "none"
    assert defaults["Promote by moving"] == "an alias"
    with_user = parse_governance({"promotion": {"webhook_url": "https://bot:pw@chat.example/h"}})
    assert "posted to chat.example" in admin.policy_table(with_user).to_string()
    assert "pw" not in admin.policy_table(with_user).to_string()


def test_gates_table_has_the_default_then_each_model_with_inherited_values() -> None:
    table = admin.gates_table(GOVERNANCE).set_index("Model")
    assert list(table.index) == ["(default)", "alpha", "zeta"]
    assert table.loc["zeta", "primary_metric"] == "eval_auc"  # inherited from the default
    assert table.loc["zeta", "block_on_drift_alarm"] == "no"
    assert table.loc["alpha", "min_improvement"] == "1"
    assert table.loc["(default)", "min_improvement"] == "0.02"
    assert table.loc["(default)", "higher_is_better"] == "inferred from the name"


@pytest.mark.parametrize(
    ("subject", "model"),
    [
        ("model:wine", "wine"),
        ("model:wine quality/alias:champion", "wine quality"),
        ("model:team/fraud/stage:Production", "team/fraud"),
        ("model:team/fraud", "team/fraud"),
        ("model:", ""),
        ("job:42", None),
    ],
)
def test_model_of_reads_the_model_from_a_subject(subject: str, model: str | None) -> None:
    assert admin.model_of(subject) == model


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = open_store(f"sqlite:///{tmp_path / 'fd.db'}")
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    rows = [
        ("Wine Quality", "alias", "champion", "promotion.requested"),
        ("wine-classifier", "alias", "challenger", "promotion.approved"),
        ("diabetes", "alias", "champion", "promotion.requested"),
        ("wine", "", "", "alias.observed"),
        ("wine", "alias", "champion", "promotion.approved"),
    ]
    with store.write() as connection:
        for i, (model, kind, target, action) in enumerate(rows):
            audit.append(
                connection,
                actor="ada",
                action=action,
                subject=audit.subject_for(model, kind, target),
                details={"i": i, "note": "ünï"},
                now=start + timedelta(minutes=i),
            )
        audit.append(connection, actor="cron", action="job.ran", subject="job:1", now=start)
    return store


def test_audit_log_without_filters_keeps_the_newest(store: Store) -> None:
    assert [e.seq for e in admin.audit_log(store)] == [1, 2, 3, 4, 5, 6]
    assert [e.seq for e in admin.audit_log(store, limit=2)] == [5, 6]


def test_audit_log_model_substring_ignores_case_and_alias_names(store: Store) -> None:
    assert [e.seq for e in admin.audit_log(store, model_contains="WINE")] == [1, 2, 4, 5]
    assert admin.audit_log(store, model_contains="champion") == []  # an alias, not a model
    assert [e.seq for e in admin.audit_log(store, model_contains="wine", limit=1)] == [5]


def test_audit_log_exact_model_excludes_longer_names(store: Store) -> None:
    assert [e.seq for e in admin.audit_log(store, model="wine")] == [4, 5]


def test_audit_log_filters_by_action_with_and_without_a_model(store: Store) -> None:
    assert [e.seq for e in admin.audit_log(store, action="promotion.approved")] == [2, 5]
    found = admin.audit_log(store, model_contains="wine", action="promotion.requested")
    assert [e.seq for e in found] == [1]


def test_audit_actions_are_distinct_and_sorted(store: Store) -> None:
    assert admin.audit_actions(store) == [
        "alias.observed",
        "job.ran",
        "promotion.approved",
        "promotion.requested",
    ]


def test_events_table_is_newest_first_with_compact_json_details(store: Store) -> None:
    table = admin.events_table(admin.audit_log(store))
    assert list(table.columns) == list(admin.AUDIT_COLUMNS)
    assert table["Seq"].tolist() == ["6", "5", "4", "3", "2", "1"]
    first = table.iloc[-1]
    assert first["Details"] == '{"i":0,"note":"ünï"}'
    assert first["Time (UTC)"] == "2026-11-24 09:00:00"
    assert first["Subject"] == "model:Wine Quality/alias:champion"
    assert first["Request"] == ""


def test_verify_audit_with_mlflow_down_reports_the_chain_but_never_intact(
    store: Store, settings_for: Callable[..., Settings]
) -> None:
    # Nothing listens on this port: the anchor cannot be read.
    settings = settings_for(f"http://127.0.0.1:{free_port()}", FLIGHTDECK_HTTP_MAX_RETRIES="0")
    anchor = AuditAnchor(TrackingGateway(settings), "flightdeck-audit")
    result = admin.verify_audit(store, anchor)
    assert result.chain.intact and result.chain.events == 6
    assert not result.anchor.checked
    assert "could not be read" in result.anchor.message
    assert not result.intact
    assert not result.broken


def test_cli_table_aligns_columns_and_escapes_control_characters() -> None:
    text = format_table(["A", "Long header", "Last"], [["xyz", "1", "tail"], ["", "22", "t"]])
    assert text.splitlines() == [
        "A    Long header  Last",
        "---  -----------  ----",
        "xyz  1            tail",
        "     22           t",
    ]
    assert printable("evil\x1b[31mred\nline") == "evil\\u001b[31mred\\u000aline"
    assert printable("ünïcode ✓") == "ünïcode ✓"
