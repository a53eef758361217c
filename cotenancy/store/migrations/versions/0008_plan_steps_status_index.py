"""Failed steps are found by their status and time: every round an executor's follow-up reads the
last day's failed steps (whose outcome was unknown), which without an index scanned every step of
every plan ever stored.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_plan_steps_status_updated_at", "plan_steps", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_plan_steps_status_updated_at", table_name="plan_steps")
