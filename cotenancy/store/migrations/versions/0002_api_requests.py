"""Requests made through the open API: demand hints, affinity rules, drains, critical VMs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
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
        "api_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_index("ix_api_requests_kind_created_at", "api_requests", ["kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_api_requests_kind_created_at", table_name="api_requests")
    op.drop_table("api_requests")
