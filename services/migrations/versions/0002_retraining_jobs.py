"""Retraining jobs: one row per retraining, its engine reference and outcome.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retraining_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("engine_ref", sa.String(256), nullable=True),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("requested_by", sa.String(320), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("new_version", sa.Integer, nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
    )
    op.create_index("ix_retraining_jobs_model", "retraining_jobs", ["model", "status"])


def downgrade() -> None:
    op.drop_index("ix_retraining_jobs_model", table_name="retraining_jobs")
    op.drop_table("retraining_jobs")
