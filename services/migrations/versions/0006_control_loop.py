"""The control loop's heartbeat: one row per pass, with what each step did.

Revision ID: 0006_control_loop
Revises: 0005_audit_keys
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_control_loop"
down_revision = "0005_audit_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loop_passes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_s", sa.Float, nullable=False),
        sa.Column("steps", sa.Text, nullable=False),
    )
    op.create_index("ix_loop_passes_finished_at", "loop_passes", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_loop_passes_finished_at", "loop_passes")
    op.drop_table("loop_passes")
