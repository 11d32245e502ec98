"""Engine construction: durable SQLite by default, PostgreSQL in production."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import Unavailable

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _make_sqlite_durable(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def _make_sqlite_durable(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the driver so the BEGIN below is
        # the only one; WAL + synchronous=FULL makes a commit survive a power
        # loss, which the audit log's "durable before release" relies on.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front (IMMEDIATE), so two appenders
        # queue instead of both reading the same tree size and one failing
        # later. Readers never wait for writers: WAL gives them a snapshot.
        writer = connection.get_execution_options().get("writer", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN DEFERRED")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; every replica may call this at start."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read(sessions: sessionmaker[Session], query: Callable[[Session], T]) -> T:
    """Run ``query`` in a read session; a database failure is Unavailable (fail closed)."""
    try:
        with sessions() as session:
            return query(session)
    except SQLAlchemyError as exc:
        raise Unavailable("the database is unavailable") from exc


def writer_sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions for transactions that write: on SQLite they take the write lock at BEGIN."""
    engine: Engine = sessions.kw["bind"]
    return sessionmaker(engine.execution_options(writer=True), expire_on_commit=False)
