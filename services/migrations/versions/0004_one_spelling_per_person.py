"""One spelling per person: names in requests and decisions stored in their case-folded form.

"Ben" and "ben" used to count as two approvers of one request. Names are now case-folded on the
way in (``services.governance.auth.person_key``); this brings the stored rows to the same form,
keeping the
earliest decision when one person decided a request twice under two spellings. The audit log is
left as it was recorded: rewriting it would break its hash chain.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _key(name: str | None) -> str | None:
    return None if name is None else name.strip().casefold()  # as services.auth.person_key


def upgrade() -> None:
    connection = op.get_bind()
    requests = sa.table(
        "promotion_requests",
        sa.column("id", sa.String),
        sa.column("requested_by", sa.String),
        sa.column("override_by", sa.String),
    )
    for row in connection.execute(sa.select(requests)).all():
        if (row.requested_by, row.override_by) != (_key(row.requested_by), _key(row.override_by)):
            connection.execute(
                requests.update()
                .where(requests.c.id == row.id)
                .values(requested_by=_key(row.requested_by), override_by=_key(row.override_by))
            )
    decisions = sa.table(
        "promotion_decisions",
        sa.column("id", sa.Integer),
        sa.column("request_id", sa.String),
        sa.column("decided_by", sa.String),
    )
    seen: set[tuple[str, str | None]] = set()
    rows = connection.execute(sa.select(decisions).order_by(decisions.c.id)).all()
    for row in rows:
        key = (row.request_id, _key(row.decided_by))
        if key in seen:
            connection.execute(decisions.delete().where(decisions.c.id == row.id))
        else:
            seen.add(key)
            if row.decided_by != key[1]:
                connection.execute(
                    decisions.update().where(decisions.c.id == row.id).values(decided_by=key[1])
                )
    jobs = sa.table("retraining_jobs", sa.column("id", sa.String), sa.column("requested_by"))
    for row in connection.execute(sa.select(jobs)).all():
        if row.requested_by != _key(row.requested_by):
            connection.execute(
                jobs.update().where(jobs.c.id == row.id).values(requested_by=_key(row.requested_by))
            )


def downgrade() -> None:
    """Nothing to undo: the case-folded names are valid in the older schema too."""
