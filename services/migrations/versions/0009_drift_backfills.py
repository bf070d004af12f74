"""Scheduled drift monitoring: ranges of batches to monitor on request (a backfill).

Revision ID: 0009_drift_backfills
Revises: 0008_notification_outbox
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_drift_backfills"
down_revision = "0008_notification_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_backfills",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("first_batch", sa.String(1024), nullable=False),
        sa.Column("end_batch", sa.String(1024), nullable=False),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("drift_backfills")
