"""Alembic environment. ``Store`` passes its own open connection in ``config.attributes["connection"]``
so the migration runs on exactly the database (and PostgreSQL search_path) the store will use; the
command line gets its URL from ``-x url=...``, ``ZHIJIAN_DB_URL`` or ``sqlalchemy.url``."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from pipeline.store.models import Base, include_name

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode lets later migrations run there too.
    # include_name: the search index's own tables are made by hand in the migrations; autogenerate leaves them be
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("ZHIJIAN_DB_URL")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass -x url=..., or set ZHIJIAN_DB_URL")
    return url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    _run(shared)
else:
    engine = create_engine(_url())
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()
