"""Results database (SQLAlchemy + Alembic; SQLite or PostgreSQL)."""

from pipeline.store.repository import AgentDay, Correction, OtherDay, StaleVersion, Store, migrate

__all__ = ["AgentDay", "Correction", "OtherDay", "StaleVersion", "Store", "migrate"]
