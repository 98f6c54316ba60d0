"""Results database (SQLAlchemy + Alembic; SQLite or PostgreSQL)."""

from pipeline.store.repository import AgentDay, Correction, Store, migrate

__all__ = ["AgentDay", "Correction", "Store", "migrate"]
