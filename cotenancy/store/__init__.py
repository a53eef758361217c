"""History store (SQLAlchemy + Alembic; SQLite by default, PostgreSQL) and the in-memory
telemetry buffer the control loop reads windows from."""

from cotenancy.store.buffer import TelemetryBuffer
from cotenancy.store.history import HistoryStore, IngestReport

__all__ = ["HistoryStore", "IngestReport", "TelemetryBuffer"]
