"""The executors' follow-up, which runs every round, finds a day's failed steps through an index,
not by reading every step of every plan the store ever kept."""

from __future__ import annotations

import sqlalchemy as sa

from cotenancy.model import StepStatus
from cotenancy.store import HistoryStore, schema


def test_the_query_for_recent_failed_steps_is_served_by_the_status_and_time_index(tmp_path):
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    steps = schema.plan_steps
    query = sa.select(steps.c.plan_id).where(
        steps.c.status == StepStatus.FAILED.value, steps.c.updated_at >= 0.0
    )
    with store.engine.connect() as connection:
        compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
    store.close()
    assert any("ix_plan_steps_status_updated_at" in row[-1] for row in plan), plan
