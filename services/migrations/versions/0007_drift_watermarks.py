"""Scheduled drift monitoring: per model, the last batch the control loop monitored.

Revision ID: 0007_drift_watermarks
Revises: 0006_control_loop
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_drift_watermarks"
down_revision = "0006_control_loop"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_watermarks",
        sa.Column("model", sa.String(512), primary_key=True),
        sa.Column("last_batch", sa.String(1024), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("drift_watermarks")
