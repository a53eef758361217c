"""VMs remember the host a live migration in flight is taking them to, so the API counts a moving
VM where it is about to land, as the planner does.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("vms", sa.Column("migration_target", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("vms") as batch:
        batch.drop_column("migration_target")
