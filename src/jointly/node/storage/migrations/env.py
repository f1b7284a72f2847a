"""Alembic environment for the node database.

Run by :class:`jointly.node.storage.db.Database` with an open connection in
``config.attributes["connection"]`` (no ``alembic.ini`` at runtime).  A developer
writing a new revision may instead run alembic with an ini file whose
``script_location`` points here and whose ``sqlalchemy.url`` names a scratch
database; ``target_metadata`` lets ``alembic revision --autogenerate`` compare
the ORM classes with that database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from jointly.node.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    # batch mode lets later revisions alter SQLite tables (copy-and-move); other databases ALTER in place
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set sqlalchemy.url in the alembic ini file")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


run()
