"""Hosts and VMs remember when an inventory stopped listing them, so the API serves the cloud as it
is and training still finds the records its history refers to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("hosts", "vms"):
        op.add_column(table, sa.Column("gone_at", sa.Double))


def downgrade() -> None:
    for table in ("hosts", "vms"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("gone_at")
