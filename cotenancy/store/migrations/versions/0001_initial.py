"""Initial history store: inventory, samples, rejected samples, events, plans and steps.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("capacity", sa.JSON, nullable=False),
        sa.Column("cluster", sa.String(255)),
        sa.Column("maintenance", sa.Boolean, nullable=False),
        sa.Column("power_model", sa.String(255)),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("seen_at", sa.Double, nullable=False),
    )
    op.create_table(
        "vms",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("host_id", sa.String(255)),
        sa.Column("size", sa.JSON, nullable=False),
        sa.Column("allocation", sa.JSON, nullable=False),
        sa.Column("vcpus", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("app_type", sa.String(255), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("security_level", sa.String(255), nullable=False),
        sa.Column("critical", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("flavor", sa.String(255)),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("seen_at", sa.Double, nullable=False),
    )
    op.create_table(
        "samples",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("vm_id", sa.String(255), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("resolution", sa.Double, nullable=False, server_default="0"),
    )
    op.create_index("ix_samples_timestamp", "samples", ["timestamp"])
    op.create_index("ix_samples_vm_timestamp", "samples", ["vm_id", "timestamp"])
    op.create_table(
        "rejected_samples",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("vm_id", sa.String(255), nullable=False),
        sa.Column("metric", sa.String(255), nullable=False),
        sa.Column("timestamp", sa.String(64), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("host_id", sa.String(255)),
        sa.Column("duration", sa.Double, nullable=False),
        sa.Column("severity", sa.Double, nullable=False),
        sa.Column("resource", sa.String(64)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("vm_ids", sa.JSON, nullable=False),
    )
    op.create_index("ix_events_timestamp", "events", ["timestamp"])
    op.create_table(
        "event_vms",
        sa.Column(
            "event_id", sa.String(32), sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("vm_id", sa.String(255), primary_key=True),
    )
    op.create_index("ix_event_vms_vm_id", "event_vms", ["vm_id"])
    op.create_table(
        "plans",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("strategy", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("stats", sa.JSON, nullable=False),
    )
    op.create_index("ix_plans_created_at", "plans", ["created_at"])
    op.create_table(
        "plan_steps",
        sa.Column("plan_id", sa.String(64), sa.ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("index", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("vm_id", sa.String(255)),
        sa.Column("source_host_id", sa.String(255)),
        sa.Column("target_host_id", sa.String(255)),
        sa.Column("size", sa.JSON),
        sa.Column("allocation", sa.JSON),
        sa.Column("host_id", sa.String(255)),
        sa.Column("maintenance", sa.Boolean),
        sa.Column("depends_on", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("expected_benefit", sa.Double, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "plan_steps",
        "plans",
        "event_vms",
        "events",
        "rejected_samples",
        "samples",
        "vms",
        "hosts",
    ):
        op.drop_table(table)
