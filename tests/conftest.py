"""Shared fixtures: a real gateway (SQLite, local storage, local keystore) in a temporary home.

Time is a FixedClock that tests move by hand; nothing sleeps.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.api.app import create_app
from gateway.api.background import free_port, serving
from gateway.audit.events import RequestContext
from gateway.bootstrap import Services, build_services
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.demo import write_synthetic_model
from gateway.identity import dev_issuer
from gateway.identity.principal import Role
from gateway.policy.pack import Eccn

# PostgreSQL here and in CI: a fresh database per test on the server at 127.0.0.1:5432.
POSTGRES_ADMIN_URL = os.environ.get(
    "WEIGHTGATE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MODEL = "acme/frontier-1"
REVISION = "r1"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"weightgate_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        keys_dir=tmp_path / "keys",
        url=f"http://127.0.0.1:{free_port()}",
    )


@pytest.fixture
def services(settings: Settings, clock: FixedClock) -> Iterator[Services]:
    init_keys(settings.keys_dir, dev_issuer=True)
    built = build_services(settings, clock)
    yield built
    built.close()


@pytest.fixture
def pg_services(settings: Settings, clock: FixedClock, postgres_url: str) -> Iterator[Services]:
    """The same gateway on a fresh PostgreSQL database instead of SQLite."""
    configured = settings.model_copy(update={"database_url": postgres_url})
    init_keys(configured.keys_dir, dev_issuer=True)
    services = build_services(configured, clock)
    yield services
    services.close()


def operator() -> RequestContext:
    return RequestContext(request_id=uuid.uuid4().hex, client_address="test")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    write_synthetic_model(directory, shards=2, shard_bytes=300_000)
    return directory


@pytest.fixture
def catalog_ready(services: Services, model_dir: Path) -> Services:
    """Organisations in DE, IN, and a German subsidiary of a Chinese parent; one 4E091 model."""
    for org_id, hq, parent in (
        ("rhein", "DE", None),
        ("deccan", "IN", None),
        ("panda-de", "DE", "CN"),
    ):
        services.catalog.add_org(org_id, name=org_id, hq=hq, parent_hq=parent, context=operator())
    services.catalog.publish(
        model_dir,
        model_id=MODEL,
        revision=REVISION,
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=operator(),
    )
    return services


@pytest.fixture
def gateway_url(catalog_ready: Services) -> Iterator[str]:
    port = int(catalog_ready.settings.url.rsplit(":", 1)[1])
    with serving(create_app(catalog_ready), "127.0.0.1", port) as url:
        yield url


def mint(
    services: Services,
    *,
    subject: str = "anna",
    org: str = "rhein",
    country: str = "DE",
    roles: tuple[Role, ...] = (Role.ML,),
    ttl: timedelta = timedelta(minutes=30),
) -> str:
    return dev_issuer.mint(
        services.settings.keys_dir,
        services.clock,
        subject=subject,
        org=org,
        country=country,
        roles=list(roles),
        ttl=ttl,
    )
