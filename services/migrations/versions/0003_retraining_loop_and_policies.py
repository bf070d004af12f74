"""Retraining outcomes (the version's evaluation and promotion request) and policy decisions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retraining_jobs") as batch:
        batch.add_column(sa.Column("outcome", sa.Text, nullable=True))
        batch.add_column(sa.Column("promotion_request_id", sa.String(32), nullable=True))
    op.create_table(
        "policy_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("cause", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.UniqueConstraint("model", "trigger", "cause", name="uq_policy_decision_cause"),
    )


def downgrade() -> None:
    op.drop_table("policy_decisions")
    with op.batch_alter_table("retraining_jobs") as batch:
        batch.drop_column("promotion_request_id")
        batch.drop_column("outcome")
