"""Audit events say how they are chained: plain SHA-256 or HMAC-SHA256 with a key (and which).

Existing events were chained with plain SHA-256, so they get ``scheme = 'sha256'`` and stay
verifiable after a key is configured.

Revision ID: 0005_audit_keys
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_audit_keys"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(
            sa.Column("scheme", sa.String(16), nullable=False, server_default="sha256")
        )
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("key_id")
        batch.drop_column("scheme")
