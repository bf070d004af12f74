"""What the Admin page and ``python -m jobs.audit`` show: roles, policy, gates and the audit log.

Pure table builders over :class:`~services.governance.config.Governance` and
:class:`~services.governance.audit.AuditEvent`, plus the two reads of the audit log they need.
Nothing here
writes: roles, policy and gates change in ``flightdeck.toml``, and the audit log only grows
through the services that act.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import sqlalchemy as sa

from services.control_loop.passes import PassReport
from services.core.store import Store, audit_events
from services.governance import audit
from services.governance.audit_anchor import AnchorCheck, AuditAnchor, check_anchor
from services.governance.auth import Action, Identity
from services.governance.config import ROLES, Gates, Governance

AUDIT_TABLE_LIMIT = 200
"""How many of the newest audit events the Admin page shows."""
AUDIT_COLUMNS = ("Seq", "Time (UTC)", "Actor", "Action", "Subject", "Request", "Details")
"""The audit table's columns, in order; shared by the page and the command line."""
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_SUBJECT_PREFIX = audit.subject_for("")
"""``model:``, the start of every subject that names a model."""
_TARGET_KINDS = ("alias", "stage")


def roles_table(governance: Governance) -> pd.DataFrame:
    """One row per role, least trusted first: who holds it and what it may do."""
    rows = []
    for role in ROLES:
        members = governance.role_members.get(role, ())
        holders = ", ".join(members) or "nobody listed"
        if role == ROLES[0]:
            holders = f"{holders}; and everyone not listed" if members else "everyone not listed"
        allowed = [a.label for a in Action if Identity("", False, role).may(a)]
        rows.append({"Role": role, "Held by": holders, "May": "; ".join(allowed)})
    return pd.DataFrame(rows, columns=["Role", "Held by", "May"])


def policy_table(governance: Governance) -> pd.DataFrame:
    """The promotion policy as setting/value rows; a webhook shows only its host."""
    webhook = urlsplit(governance.webhook_url).hostname or ""
    rows = [
        ("Promote by moving", "an alias" if governance.target == "alias" else "a legacy stage"),
        ("Approvals required", str(governance.approvals_required)),
        ("Requests expire after", f"{governance.request_ttl_hours:g} h"),
        # A webhook's path (Slack) or user part may be a secret, so only the host is shown.
        ("Notifications", f"posted to {webhook}" if webhook else "none"),
    ]
    return pd.DataFrame(rows, columns=["Setting", "Value"])


def gates_table(governance: Governance) -> pd.DataFrame:
    """The default gates, then each model that has its own, one column per gate."""
    names = [f.name for f in fields(Gates)]
    sections = [("(default)", governance.default_gates), *sorted(governance.model_gates.items())]
    rows = [
        {"Model": model, **{name: _gate_value(name, getattr(gates, name)) for name in names}}
        for model, gates in sections
    ]
    return pd.DataFrame(rows, columns=["Model", *names])


def passes_table(passes: Sequence[PassReport]) -> pd.DataFrame:
    """The control loop's recent passes, newest first: who ran each, how long, what each step
    did (a step that failed shows its problem)."""
    rows = []
    for report in passes:
        row: dict[str, Any] = {
            "Finished": report.finished_at,
            "Leader": report.holder,
            "Seconds": round(report.duration_s, 2),
        }
        for step in report.steps:
            row[step.name.capitalize()] = (
                f"{step.done}; {step.problem}"
                if step.done and step.problem
                else step.problem or step.done
            )
        rows.append(row)
    return pd.DataFrame(rows)


def outbox_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The newest notifications and how their delivery went (the webhook's URL is not shown)."""
    return pd.DataFrame(
        [
            {
                "Created": row["created_at"],
                "Event": row["event"],
                "Attempts": row["attempts"],
                "Delivered": row["delivered_at"],
                "Given up": row["given_up_at"],
                "Last error": row["last_error"],
            }
            for row in rows
        ]
    )


def model_of(subject: str) -> str | None:
    """The model an audit subject names (``model:<name>[/<alias|stage>:<target>]``), or None."""
    if not subject.startswith(_SUBJECT_PREFIX):
        return None
    rest = subject[len(_SUBJECT_PREFIX) :]
    head, slash, tail = rest.rpartition("/")
    if slash and tail.partition(":")[0] in _TARGET_KINDS:
        return head
    return rest


def audit_log(
    store: Store,
    *,
    model: str | None = None,
    model_contains: str = "",
    action: str = "",
    limit: int = AUDIT_TABLE_LIMIT,
) -> list[audit.AuditEvent]:
    """The newest ``limit`` events, oldest first, optionally filtered.

    Args:
        store: The application store.
        model: Keep only events about exactly this model (and its aliases or stages).
        model_contains: Keep only events about models whose name contains this (any case).
        action: Keep only events with exactly this action; empty keeps all.
        limit: How many of the newest matching events to return.

    Raises:
        StoreError: The store cannot be read.
    """
    needle = model_contains.strip().casefold()
    actions = (action,) if action else ()
    prefix = audit.subject_for(model) if model is not None else None
    with store.read() as connection:
        if model is None and not needle:
            return audit.events(connection, actions=actions, limit=limit)
        found = audit.events(connection, subject_prefix=prefix or _SUBJECT_PREFIX, actions=actions)
    kept = [
        event
        for event in found
        if (name := model_of(event.subject)) is not None
        and (model is None or name == model)
        and needle in name.casefold()
    ]
    return kept[-limit:] if limit > 0 else []


def audit_actions(store: Store) -> list[str]:
    """Every action recorded in the audit log, sorted, for a filter's options.

    Raises:
        StoreError: The store cannot be read.
    """
    with store.read() as connection:
        query = sa.select(audit_events.c.action).distinct().order_by(audit_events.c.action)
        return [str(action) for action in connection.execute(query).scalars()]


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """The audit log's hash chain and its anchor, checked together."""

    chain: audit.ChainCheck
    """Every event's link and hash (see :func:`services.governance.audit.verify`)."""
    anchor: AnchorCheck
    """The log's end compared with the head anchored in MLflow."""

    @property
    def intact(self) -> bool:
        """True only when the chain is intact and the anchor was checked and matches."""
        return self.chain.intact and self.anchor.checked and not self.anchor.broken

    @property
    def broken(self) -> bool:
        """True when tampering was found, or an event cannot be verified with this key."""
        return not self.chain.intact or self.anchor.broken


def verify_audit(store: Store, anchor: AuditAnchor) -> AuditVerification:
    """Walk the audit log's hash chain and compare its end with the anchor in MLflow.

    MLflow being unreachable does not fail the call: the anchor is then reported as not
    checked (``verification.anchor.checked`` is False), never as a match.

    Raises:
        StoreError: The store cannot be read.
    """
    with store.read() as connection:
        chain = audit.verify(connection)
    return AuditVerification(chain, check_anchor(store, anchor))


def event_row(event: audit.AuditEvent) -> dict[str, str]:
    """One event as text cells keyed by :data:`AUDIT_COLUMNS`; details as compact JSON."""
    return {
        "Seq": str(event.seq),
        "Time (UTC)": f"{event.at:{TIME_FORMAT}}",
        "Actor": event.actor,
        "Action": event.action,
        "Subject": event.subject,
        "Request": event.request_id or "",
        "Details": compact_json(event.details),
    }


def events_table(events: Sequence[audit.AuditEvent]) -> pd.DataFrame:
    """Events newest first, as untrusted plain text cells."""
    rows = [event_row(event) for event in reversed(events)]
    return pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))


def compact_json(value: Mapping[str, Any]) -> str:
    """``value`` as one line of JSON with sorted keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _gate_value(name: str, value: object) -> str:
    if name == "higher_is_better" and value is None:
        return "inferred from the name"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
