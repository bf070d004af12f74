"""Metric histories of finished runs, kept for good (they never change once a run ends).

Revision ID: 0010_metric_histories
Revises: 0009_drift_backfills
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_metric_histories"
down_revision = "0009_drift_backfills"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_histories",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("metric_key", sa.String(250), primary_key=True),
        sa.Column("max_points", sa.Integer, primary_key=True),
        sa.Column("points", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("metric_histories")
