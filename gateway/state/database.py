"""Engine construction: durable SQLite by default, PostgreSQL in production."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import Unavailable

T = TypeVar("T")


# How long a write transaction may run (waiting for the tree-state lock included)
# before PostgreSQL aborts it: an audit batch that has begun always ends, one way
# or the other, within this bound, and its callers learn which.
WRITE_TIMEOUT_MS = 10_000


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # One connection per request thread (AnyIO runs 40): a request never
            # waits for a connection, and none is reopened (with its PRAGMAs) per read.
            pool_size=48,
            max_overflow=16,
        )
        _make_sqlite_durable(engine)
    else:
        engine = create_engine(
            url,
            pool_pre_ping=True,
            # A server that vanished without closing the connection (a partition,
            # a failover) is noticed within about 25 s, not the kernel's 2 hours.
            connect_args={
                "connect_timeout": 5,
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
        )
        _bound_postgres_writes(engine)
    return engine


def _bound_postgres_writes(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("writer", False):
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {WRITE_TIMEOUT_MS}")


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


# Any constant both replicas agree on: the key of PostgreSQL's advisory lock for migrations.
MIGRATION_LOCK = 0x77676D69  # "wgmi"


def migrate(engine: Engine, *, checkpoint_dir: Path | None = None) -> None:
    """Bring the schema to the newest revision, once, however many replicas start together.

    The upgrade runs in one transaction that first takes a lock every replica
    contends for (a PostgreSQL advisory lock; SQLite's write lock), so the
    first replica migrates and the others find the schema at head. DDL is
    transactional on both, so a replica killed mid-migration leaves nothing
    half-done. ``checkpoint_dir`` is the pre-0006 checkpoint directory, which
    that revision imports.
    """
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["checkpoint_dir"] = checkpoint_dir
    # On SQLite the write lock (BEGIN IMMEDIATE) is the lock; PostgreSQL takes
    # an advisory one, without the audit writer's statement timeout.
    sqlite = engine.dialect.name == "sqlite"
    with (engine.execution_options(writer=True) if sqlite else engine).begin() as connection:
        if not sqlite:
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
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


@contextlib.contextmanager
def write(writers: sessionmaker[Session]) -> Iterator[Session]:
    """A write transaction on ``writers``; a database failure is Unavailable (fail closed)."""
    try:
        with writers.begin() as session:
            yield session
    except SQLAlchemyError as exc:
        raise Unavailable("the database is unavailable") from exc


def writer_sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions for transactions that write: on SQLite they take the write lock at BEGIN."""
    engine: Engine = sessions.kw["bind"]
    return sessionmaker(engine.execution_options(writer=True), expire_on_commit=False)


class WriteTurn:
    """Whose turn it is to write, across the processes sharing one SQLite database.

    SQLite lets one writer in at a time and makes the others poll, sleeping
    up to 100 ms between tries: two ``serve`` workers committing audit
    batches would keep each other waiting for nothing. An exclusive ``flock``
    beside the database queues them in the kernel instead, which wakes the
    next writer the moment the lock is released. On PostgreSQL writers queue
    on the tree-state row lock, and this is a no-op.
    """

    def __init__(self, engine: Engine) -> None:
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._path = Path(f"{database}.write-lock") if database and database != ":memory:" else None
        self._fd: int | None = None
        self._opening = threading.Lock()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        fd = self._descriptor(self._path)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _descriptor(self, path: Path) -> int:
        with self._opening:
            if self._fd is None:
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
