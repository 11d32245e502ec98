"""The schema comes from migrations alone, and the migrations say exactly what the models say."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select

from gateway.audit.merkle import EMPTY_ROOT
from gateway.state.database import make_engine, migrate
from gateway.state.tables import Base, TreeState


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    url: str = request.getfixturevalue("postgres_url")
    return make_engine(url)


def test_migrations_build_the_schema_the_models_describe(engine: Engine) -> None:
    migrate(engine)
    with engine.connect() as connection:
        drift = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert drift == []


def test_migrating_twice_is_harmless_and_the_tree_head_starts_empty(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)
    with engine.connect() as connection:
        [state] = connection.execute(select(TreeState.size, TreeState.root)).all()
    engine.dispose()
    assert (state.size, state.root) == (0, EMPTY_ROOT)
