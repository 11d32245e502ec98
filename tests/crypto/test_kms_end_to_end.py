"""The whole gateway on the KMS keystore: publish, grant, fetch, a moved key, KMS down, rotation.

The gateway is built by ``bootstrap`` from ``WEIGHTGATE_KEYSTORE=kms:alias/...``
as in production, served over HTTP and fetched from by the real client;
moto's server stands in for AWS KMS, which cannot run here (see conftest).
"""

from __future__ import annotations

import filecmp
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from gateway.api.app import create_app
from gateway.api.background import serving
from gateway.bootstrap import Services, build_services
from gateway.client.fetch import FetchOptions, fetch
from gateway.client.gateway_api import GatewayClient
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyrelease import ClientKeyPair
from gateway.crypto.keyring import init_keys
from gateway.crypto.kms_keystore import make_client
from gateway.key_rotation import RETIRE_AFTER_REWRAP
from gateway.policy.pack import Eccn
from gateway.state.tables import AuditEntry, Grant, ModelFile
from tests.conftest import MODEL, REVISION, mint, operator
from tests.crypto.conftest import create_kms_key, unique_alias
from tests.crypto.test_keystore_rotation import ask_grant, download_and_decrypt, rotation
from tests.storage.conftest import (
    REGION,
    MotoServer,
    isolate_aws_environment,
    running_moto,
    s3_session,
)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # bootstrap builds its KMS client from the default AWS chain, as in production.
    isolate_aws_environment(monkeypatch, tmp_path, credentials=True)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@contextmanager
def gateway(settings: Settings, clock: FixedClock, *, publish: Path | None) -> Iterator[Services]:
    """A gateway on ``settings``, serving HTTP; with ``publish``, one org and that model."""
    init_keys(settings.keys_dir, dev_issuer=True)
    services = build_services(settings, clock)
    try:
        if publish is not None:
            services.catalog.add_org(
                "rhein", name="Rhein", hq="DE", parent_hq=None, context=operator()
            )
            services.catalog.publish(
                publish,
                model_id=MODEL,
                revision=REVISION,
                eccn=Eccn.AI_MODEL_WEIGHTS,
                training_ops=None,
                context=operator(),
            )
        port = int(settings.url.rsplit(":", 1)[1])
        with serving(create_app(services), "127.0.0.1", port):
            yield services
    finally:
        services.close()


def on_kms(settings: Settings, server: MotoServer, key: str) -> Settings:
    return settings.model_copy(update={"keystore": f"kms:{key}", "kms_endpoint_url": server.url})


def kek_ids(services: Services) -> set[str]:
    with services.sessions() as session:
        return set(session.scalars(select(ModelFile.kek_id)))


def kek_ids_rows(services: Services) -> list[str]:
    with services.sessions() as session:
        return list(session.scalars(select(ModelFile.kek_id)))


def counts(services: Services) -> tuple[int, int]:
    with services.sessions() as session:
        entries = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
        grants = session.scalar(select(func.count()).select_from(Grant)) or 0
    return entries, grants


def test_published_through_kms_granted_and_fetched_identical(
    kms: Any,
    kms_server: MotoServer,
    settings: Settings,
    clock: FixedClock,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    alias = unique_alias()
    arn = create_kms_key(kms, alias)
    with gateway(on_kms(settings, kms_server, alias), clock, publish=model_dir) as services:
        # The row names the key's ARN, not the alias that may later move.
        assert kek_ids(services) == {f"kms:{arn}"}
        services.check_ready()
        with GatewayClient(services.settings.url, mint(services)) as client:
            files = fetch(client, MODEL, None, tmp_path / "out", FetchOptions(workers=2))
        # The grant path went through the data-key cache: one entry per file.
        assert len(services.keystore) == len(files)
    assert sorted(f.path.name for f in files) == sorted(p.name for p in model_dir.iterdir())
    for item in files:
        assert filecmp.cmp(model_dir / item.path.name, item.path, shallow=False)


def test_a_wrapped_key_moved_onto_another_files_row_is_refused_by_kms_and_nothing_issued(
    kms: Any, kms_server: MotoServer, settings: Settings, clock: FixedClock, model_dir: Path
) -> None:
    alias = unique_alias()
    create_kms_key(kms, alias)
    with gateway(on_kms(settings, kms_server, alias), clock, publish=model_dir) as services:
        with services.sessions.begin() as session:
            donor, victim = session.scalars(select(ModelFile).order_by(ModelFile.path)).all()[:2]
            # Someone with write access to the database swaps in another file's key.
            session.execute(
                update(ModelFile)
                .where(ModelFile.file_version == victim.file_version)
                .values(wrapped_key=donor.wrapped_key)
            )
        before = counts(services)
        response = httpx.post(
            f"{services.settings.url}/v1/grants",
            json={"model": MODEL, "recipient_key": ClientKeyPair.generate().recipient_key()},
            headers={"Authorization": f"Bearer {mint(services)}"},
            timeout=30,
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "wrapped_key" not in response.text
        assert counts(services) == before


def test_kms_unreachable_means_503_and_nothing_issued_until_it_returns(
    settings: Settings, clock: FixedClock, model_dir: Path
) -> None:
    with running_moto() as server:
        client = make_client(endpoint_url=server.url, session=s3_session())
        alias = unique_alias()
        create_kms_key(client, alias)
        with gateway(on_kms(settings, server, alias), clock, publish=model_dir) as services:
            server.stop()
            before = counts(services)
            response = httpx.post(
                f"{services.settings.url}/v1/grants",
                json={"model": MODEL, "recipient_key": ClientKeyPair.generate().recipient_key()},
                headers={"Authorization": f"Bearer {mint(services)}"},
                timeout=30,
            )
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "unavailable"
            assert "wrapped_key" not in response.text
            assert counts(services) == before
            ready = httpx.get(f"{services.settings.url}/readyz", timeout=30)
            assert ready.status_code == 503


def test_moving_from_local_keys_to_kms_and_then_to_a_new_kms_key_keeps_every_grant_working(
    kms: Any,
    kms_server: MotoServer,
    settings: Settings,
    clock: FixedClock,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    # Published with the local keystore, as every gateway so far.
    with gateway(settings, clock, publish=model_dir) as services:
        assert kek_ids(services) == {"local:v1"}
    alias = unique_alias()
    first = create_kms_key(kms, alias)
    with gateway(on_kms(settings, kms_server, alias), clock, publish=None) as services:
        with httpx.Client(base_url=services.settings.url, timeout=30) as http:
            keys_before = ClientKeyPair.generate()
            # Before any rotation: the local data keys still unwrap from kek/.
            before = ask_grant(http, services, keys_before)

            moved = rotation(services).rotate(operator())
            assert (moved.target, moved.created) == (f"kms:{first}", False)
            assert kek_ids(services) == {f"kms:{first}"}
            clock.advance(RETIRE_AFTER_REWRAP)
            rotation(services).retire("local:v1", operator())

            # A new KMS key behind the same alias, and a rotation onto it.
            second = create_kms_key(kms)
            kms.update_alias(AliasName=alias, TargetKeyId=second)
            keys_between = ClientKeyPair.generate()
            between = ask_grant(http, services, keys_between)
            onto_new = rotation(services).rotate(operator())
            assert (onto_new.target, onto_new.rewrapped) == (
                f"kms:{second}",
                len(kek_ids_rows(services)),
            )
            assert kek_ids(services) == {f"kms:{second}"}
            uses = {u.kek_id: u.data_keys for u in rotation(services).status()}
            assert uses[f"kms:{second}"] == len(kek_ids_rows(services))
            assert uses.get(f"kms:{first}", 0) == 0

            clock.advance(RETIRE_AFTER_REWRAP)
            rotation(services).retire(f"kms:{first}", operator())
            assert kms.describe_key(KeyId=first.rsplit("/", 1)[1])["KeyMetadata"]["KeyState"] == (
                "Disabled"
            )

            # Grants from before each rotation still decrypt, and a new one works.
            download_and_decrypt(before, keys_before, tmp_path / "before", model_dir)
            download_and_decrypt(between, keys_between, tmp_path / "between", model_dir)
            after = ask_grant(http, services, ClientKeyPair.generate())
            assert len(after["files"]) == len(kek_ids_rows(services))
        events = [e.as_dict()["event"] for e in services.audit.query(after=-1)]
        assert events.count("keys.retire") == 2
        assert events.count("keys.rotate") == 2
