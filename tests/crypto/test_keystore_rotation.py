"""KEK rotation on a real gateway (SQLite, local storage, local keystore) served over HTTP.

Rotation re-wraps data keys and nothing else; grants from before and after
it download and decrypt; an interrupted rotation is finished by running it
again; a KEK is retired only once nothing can still need it.
"""

from __future__ import annotations

import filecmp
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from gateway.audit.export import to_ocsf
from gateway.bootstrap import Services
from gateway.client.decrypt import decrypt_downloads
from gateway.client.fetch import FetchOptions, fetch
from gateway.client.gateway_api import GatewayClient
from gateway.clock import FixedClock
from gateway.crypto.keyrelease import ClientKeyPair
from gateway.crypto.keystore import LocalKeystore
from gateway.errors import Conflict, NotFound, Unavailable
from gateway.key_rotation import RETIRE_AFTER_REWRAP, KeyRotation
from gateway.policy.pack import Eccn
from gateway.state.tables import ModelFile
from tests.conftest import MODEL, mint, operator


def rotation(services: Services, keystore: Any = None) -> KeyRotation:
    return KeyRotation(
        services.sessions,
        audit=services.audit,
        keystore=keystore or services.keystore.backing,
        clock=services.clock,
    )


def rows(services: Services) -> dict[str, ModelFile]:
    with services.sessions() as session:
        return {r.path: r for r in session.scalars(select(ModelFile))}


def entries(services: Services, event: str) -> list[dict[str, Any]]:
    return [e.as_dict() for e in services.audit.query(event=event)]


def stored_objects(services: Services) -> dict[str, bytes]:
    """Every byte the local store holds, by path: what a rotation must not change."""
    root = services.settings.home / "blobs"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def uses(services: Services) -> dict[str, int]:
    return {u.kek_id: u.data_keys for u in rotation(services).status()}


@pytest.fixture
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        yield client


def ask_grant(http: httpx.Client, services: Services, keys: ClientKeyPair) -> dict[str, Any]:
    response = http.post(
        "/v1/grants",
        json={"model": MODEL, "recipient_key": keys.recipient_key(), "envelopes": ["v2"]},
        headers={"Authorization": f"Bearer {mint(services)}"},
    )
    assert response.status_code == 201, response.text
    grant: dict[str, Any] = response.json()
    return grant


def download_and_decrypt(
    grant: dict[str, Any], keys: ClientKeyPair, work: Path, model_dir: Path
) -> None:
    sealed = work / "sealed"
    for item in grant["files"]:
        response = httpx.get(item["url"], follow_redirects=True, timeout=10)
        assert response.status_code == 200, response.text
        target = sealed / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(response.content)
    for plain in decrypt_downloads(grant, keys, sealed, work / "plain"):
        relative = plain.path.relative_to(work / "plain")
        assert filecmp.cmp(model_dir / relative, plain.path, shallow=False)


class FailingAfter:
    """The real keystore, cut off after ``wraps`` wraps, as a KMS outage mid-rotation would."""

    def __init__(self, keystore: LocalKeystore, wraps: int) -> None:
        self._keystore = keystore
        self._left = wraps

    def __getattr__(self, name: str) -> Any:
        return getattr(self._keystore, name)

    def wrap(self, data_key: bytes, context: dict[str, str]) -> tuple[str, bytes]:
        if self._left == 0:
            raise Unavailable("the keystore went away")
        self._left -= 1
        return self._keystore.wrap(data_key, context)


def test_rotation_rewraps_every_data_key_and_touches_nothing_else(
    catalog_ready: Services,
) -> None:
    before = rows(catalog_ready)
    stored = stored_objects(catalog_ready)
    assert len(stored) == len(before)
    assert {r.kek_id for r in before.values()} == {"local:v1"}

    result = rotation(catalog_ready).rotate(operator(), batch_size=2)

    assert (result.target, result.created) == ("local:v2", True)
    assert result.rewrapped == len(before)
    assert result.batches == -(-len(before) // 2)
    assert result.unreadable == ()
    after = rows(catalog_ready)
    for path, row in after.items():
        old = before[path]
        assert row.kek_id == "local:v2"
        assert row.wrapped_key != old.wrapped_key
        # The weights, their header and their storage location are as published.
        assert (row.header, row.object_key, row.object_version, row.ciphertext_size) == (
            old.header,
            old.object_key,
            old.object_version,
            old.ciphertext_size,
        )
    assert stored_objects(catalog_ready) == stored
    [started] = entries(catalog_ready, "keys.rotate")
    assert started["kek"] == {"target": "local:v2", "new_version": True}
    assert started["pending"] == len(before)
    batches = entries(catalog_ready, "keys.rewrap")
    assert len(batches) == result.batches
    assert sum(b["data_keys"] for b in batches) == len(before)
    assert all(set(b["kek"]["from"]) == {"local:v1"} for b in batches)
    assert uses(catalog_ready) == {"local:v1": 0, "local:v2": len(before)}
    # A SIEM sees key changes as API activity of the operator, not as "other".
    [logged] = catalog_ready.audit.query(event="keys.rotate")
    record = to_ocsf(logged, product_version="test")
    assert (record["class_uid"], record["activity_id"]) == (6003, 3)


def test_grants_from_before_and_after_rotation_decrypt_even_once_the_old_kek_is_retired(
    catalog_ready: Services,
    http: httpx.Client,
    clock: FixedClock,
    tmp_path: Path,
    model_dir: Path,
) -> None:
    keys = ClientKeyPair.generate()
    before = ask_grant(http, catalog_ready, keys)

    rotation(catalog_ready).rotate(operator())
    after = ask_grant(http, catalog_ready, ClientKeyPair.generate())
    assert after["id"] != before["id"]

    clock.advance(RETIRE_AFTER_REWRAP)
    rotation(catalog_ready).retire("local:v1", operator())
    assert not (catalog_ready.settings.keys_dir / "kek" / "v1.key").exists()

    # The grant made under v1 still downloads and decrypts: its file keys were
    # sealed to the client when it was issued and need no KEK any more.
    download_and_decrypt(before, keys, tmp_path / "before", model_dir)
    # A new grant, after the retirement, unwraps the re-wrapped keys under v2.
    with GatewayClient(str(http.base_url), mint(catalog_ready)) as client:
        fetched = fetch(client, MODEL, None, tmp_path / "after", FetchOptions(workers=2))
    for item in fetched:
        assert filecmp.cmp(model_dir / item.path.name, item.path, shallow=False)


def test_an_interrupted_rotation_is_finished_by_running_it_again(catalog_ready: Services) -> None:
    count = len(rows(catalog_ready))
    local = catalog_ready.keystore.backing
    assert isinstance(local, LocalKeystore)
    with pytest.raises(Unavailable):
        rotation(catalog_ready, FailingAfter(local, wraps=1)).rotate(operator(), batch_size=1)
    # The first batch landed with its entry; the rest waits under v1.
    assert uses(catalog_ready) == {"local:v1": count - 1, "local:v2": 1}
    assert len(entries(catalog_ready, "keys.rewrap")) == 1

    again = rotation(catalog_ready).rotate(operator(), batch_size=1)
    # Finished onto the same v2: no new version while the last rotation is unfinished.
    assert (again.target, again.created, again.rewrapped) == ("local:v2", False, count - 1)
    assert uses(catalog_ready) == {"local:v1": 0, "local:v2": count}
    assert local.known_ids() == ["local:v1", "local:v2"]
    # A third run starts a new rotation.
    assert rotation(catalog_ready).rotate(operator()).target == "local:v3"


def test_a_data_key_that_does_not_unwrap_is_named_and_the_rest_rotate(
    catalog_ready: Services,
) -> None:
    victim = sorted(rows(catalog_ready))[0]
    with catalog_ready.sessions.begin() as session:
        session.execute(
            update(ModelFile)
            .where(ModelFile.path == victim)
            .values(wrapped_key=b"\x01" + bytes(60))
        )
    result = rotation(catalog_ready).rotate(operator())
    assert result.unreadable == (f"{MODEL}@r1:{victim}",)
    assert result.rewrapped == len(rows(catalog_ready)) - 1
    assert rows(catalog_ready)[victim].kek_id == "local:v1"
    with pytest.raises(Conflict, match="1 data keys still use local:v1"):
        rotation(catalog_ready).retire("local:v1", operator())


def test_retiring_is_refused_while_anything_could_still_need_the_kek(
    catalog_ready: Services, clock: FixedClock
) -> None:
    keys = rotation(catalog_ready)
    with pytest.raises(NotFound, match="local:v9"):
        keys.retire("local:v9", operator())
    with pytest.raises(Conflict, match="current KEK"):
        keys.retire("local:v1", operator())
    local = catalog_ready.keystore.backing
    local.advance()  # v2 is current, but every data key is still under v1
    with pytest.raises(Conflict, match="data keys still use local:v1"):
        keys.retire("local:v1", operator())
    keys.rotate(operator())
    # Running gateways may still hold the rows they read before the re-wrap.
    with pytest.raises(Conflict, match="re-wrapped"):
        keys.retire("local:v1", operator())
    clock.advance(RETIRE_AFTER_REWRAP - timedelta(seconds=1))
    with pytest.raises(Conflict, match="re-wrapped"):
        keys.retire("local:v1", operator())
    assert entries(catalog_ready, "keys.retire") == []
    clock.advance(timedelta(seconds=1))
    keys.retire("local:v1", operator())
    [retired] = entries(catalog_ready, "keys.retire")
    assert retired["kek"] == "local:v1"
    assert local.known_ids() == ["local:v2"]


def test_a_batch_that_lost_a_race_rolls_back_whole_with_its_entry(
    catalog_ready: Services,
) -> None:
    local = catalog_ready.keystore.backing
    assert isinstance(local, LocalKeystore)
    victim = sorted(rows(catalog_ready))[-1]

    class RacedKeystore(FailingAfter):
        """Another rotation re-wraps the last row between this one's read and its commit."""

        def wrap(self, data_key: bytes, context: dict[str, str]) -> tuple[str, bytes]:
            wrapped = super().wrap(data_key, context)
            if context["path"] == victim:
                with catalog_ready.sessions.begin() as session:
                    session.execute(
                        update(ModelFile)
                        .where(ModelFile.path == victim)
                        .values(kek_id=wrapped[0], wrapped_key=wrapped[1])
                    )
            return wrapped

    local.advance()
    count = len(rows(catalog_ready))
    with pytest.raises(Conflict, match="changed during the rotation"):
        rotation(catalog_ready, RacedKeystore(local, wraps=count)).rotate(
            operator(), batch_size=count
        )
    assert uses(catalog_ready) == {"local:v1": count - 1, "local:v2": 1}
    assert entries(catalog_ready, "keys.rewrap") == []
    assert rotation(catalog_ready).rotate(operator()).rewrapped == count - 1


def test_rotation_and_retirement_on_postgresql(
    pg_services: Services, model_dir: Path, clock: FixedClock
) -> None:
    pg_services.catalog.publish(
        model_dir,
        model_id=MODEL,
        revision="r1",
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=operator(),
    )
    count = len(rows(pg_services))
    local = pg_services.keystore.backing
    assert isinstance(local, LocalKeystore)
    with pytest.raises(Unavailable):
        rotation(pg_services, FailingAfter(local, wraps=1)).rotate(operator(), batch_size=1)
    again = rotation(pg_services).rotate(operator(), batch_size=2)
    assert (again.target, again.rewrapped) == ("local:v2", count - 1)
    assert uses(pg_services) == {"local:v1": 0, "local:v2": count}
    clock.advance(RETIRE_AFTER_REWRAP)
    rotation(pg_services).retire("local:v1", operator())
    assert [e["kek"] for e in entries(pg_services, "keys.retire")] == ["local:v1"]
