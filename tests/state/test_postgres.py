"""The production database: several replicas append to one log, and the grant path runs on it."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.api.app import create_app
from gateway.api.background import serving
from gateway.audit.events import build_event
from gateway.audit.log import AuditLog
from gateway.audit.verify import verify_log
from gateway.bootstrap import Services, build_services
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.errors import Unavailable
from gateway.policy.pack import Eccn
from gateway.state.database import make_engine, session_factory
from tests.conftest import MODEL, mint, operator

REPLICAS = 4
APPENDS = 15


def _verify(services: Services) -> None:
    """Publish whatever is unsigned, then check the whole log against every checkpoint."""
    services.publisher.publish()
    size, root = services.audit.tree_state()
    report = verify_log(
        services.audit.entries(),
        origin=services.audit.origin,
        public_key=services.keys.audit_signer.public_key(),
        checkpoint_notes=services.audit.checkpoint_notes(),
        state=(size, root),
    )
    assert report.ok, report.problems
    assert (report.size, report.unsigned) == (size, 0)
    assert report.checkpoints >= 1


def test_replicas_appending_at_once_make_one_gapless_sequence(pg_services: Services) -> None:
    engines = [make_engine(pg_services.settings.resolved_database_url()) for _ in range(REPLICAS)]
    logs = [
        AuditLog(
            session_factory(e),
            origin=pg_services.audit.origin,
            public_key=pg_services.keys.audit_signer.public_key(),
        )
        for e in engines
    ]
    start = threading.Barrier(REPLICAS, timeout=60)
    event = build_event("quota.set", time=pg_services.clock.now(), context=operator(), quota={})
    published: list[int] = []

    def replica(log: AuditLog) -> list[int]:
        start.wait()
        indices = []
        for n in range(APPENDS):
            indices.extend(log.append([event] * (1 + n % 3)))
            # Publication rounds run while the replicas append, as the
            # publisher's interval thread would.
            if log is logs[0] and (signed := pg_services.publisher.publish()) is not None:
                published.append(signed.size)
        return indices

    try:
        with ThreadPoolExecutor(REPLICAS) as pool:
            indices = [i for result in pool.map(replica, logs) for i in result]
    finally:
        for log in logs:
            log.close()
        for engine in engines:
            engine.dispose()
    assert sorted(indices) == list(range(len(indices)))
    assert pg_services.audit.tree_state()[0] == len(indices)
    assert published == sorted(set(published))  # each round signed a larger tree
    _verify(pg_services)
    assert len(pg_services.audit.checkpoint_notes()) == len(published) + (
        published[-1] != len(indices)
    )


def test_grant_path_on_postgres(pg_services: Services, model_dir: Path) -> None:
    pg_services.catalog.add_org(
        "rhein", name="Rhein AI", hq="DE", parent_hq=None, context=operator()
    )
    pg_services.catalog.publish(
        model_dir,
        model_id=MODEL,
        revision="r1",
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=operator(),
    )
    key = base64.b64encode(X25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    port = int(pg_services.settings.url.rsplit(":", 1)[1])
    with serving(create_app(pg_services), "127.0.0.1", port) as url:
        allowed = httpx.post(
            f"{url}/v1/grants",
            json={"model": MODEL, "recipient_key": key},
            headers={"Authorization": f"Bearer {mint(pg_services)}"},
        )
        denied = httpx.post(
            f"{url}/v1/grants",
            json={"model": MODEL, "recipient_key": key},
            headers={"Authorization": f"Bearer {mint(pg_services, country='CN')}"},
        )
        file_url = allowed.json()["files"][0]["url"]
        assert httpx.get(file_url).status_code == 307
    assert allowed.status_code == 201 and denied.status_code == 403
    events = [r.as_dict()["event"] for r in pg_services.audit.query()]
    assert events == ["org.add", "model.publish", "grant.allow", "grant.deny", "download.redirect"]
    _verify(pg_services)


def test_an_unreachable_database_grants_nothing(settings: Settings, clock: FixedClock) -> None:
    configured = settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    )
    init_keys(configured.keys_dir, dev_issuer=True)
    with pytest.raises(Unavailable, match="database"):
        build_services(configured, clock)
