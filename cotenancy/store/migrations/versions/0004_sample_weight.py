"""Each sample row says how many raw samples it stands for, so a late raw sample merges into its
bucket's mean instead of weighing as much as the whole bucket, and grids weigh means fairly.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("samples", sa.Column("weight", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("samples") as batch:
        batch.drop_column("weight")
