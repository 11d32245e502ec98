"""What every keystore promises, run against each: the local one and KMS (moto, see conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.crypto.keystore import Keystore, LocalKeystore
from gateway.crypto.kms_keystore import KmsKeystore
from gateway.errors import IntegrityError
from tests.crypto.conftest import create_kms_key
from tests.crypto.test_keystore import DATA_KEY, file_identity


@pytest.fixture(params=["local", "kms"])
def keystore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Keystore]:
    if request.param == "local":
        local = LocalKeystore(tmp_path / "keys")
        local.create()
        yield local
    else:
        client: Any = request.getfixturevalue("kms")
        yield KmsKeystore(create_kms_key(client), client=client)


def test_wrapped_key_unwraps_for_its_own_file_under_the_current_kek(keystore: Keystore) -> None:
    keystore.check()
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    assert kek_id == keystore.current_id()
    assert kek_id in keystore.known_ids()
    assert keystore.holds(kek_id)
    assert DATA_KEY not in wrapped
    assert wrapped[0] == 1  # every stored format starts with its version
    assert keystore.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY


def test_wrapping_the_same_key_twice_gives_different_blobs(keystore: Keystore) -> None:
    assert (
        keystore.wrap(DATA_KEY, file_identity())[1] != keystore.wrap(DATA_KEY, file_identity())[1]
    )


@pytest.mark.parametrize(
    "moved_to",
    [
        {"model": "acme/frontier-2"},
        {"revision": "r2"},
        {"path": "weights/model-00002-of-00002.safetensors"},
        {"file_version": "0" * 32},
    ],
    ids=["model", "revision", "path", "file_version"],
)
def test_wrapped_key_copied_onto_another_files_row_is_refused(
    keystore: Keystore, moved_to: dict[str, str]
) -> None:
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    with pytest.raises(IntegrityError):
        keystore.unwrap(kek_id, wrapped, file_identity(**moved_to))


@pytest.mark.parametrize("where", ["after-version", "middle", "last"])
def test_corrupted_wrapped_key_is_refused(keystore: Keystore, where: str) -> None:
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    position = {"after-version": 40, "middle": len(wrapped) // 2, "last": len(wrapped) - 1}[where]
    corrupted = bytearray(wrapped)
    corrupted[position] ^= 0x01
    with pytest.raises(IntegrityError):
        keystore.unwrap(kek_id, bytes(corrupted), file_identity())


@pytest.mark.parametrize("keep", [0, 1, 20])
def test_truncated_wrapped_key_is_refused(keystore: Keystore, keep: int) -> None:
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    with pytest.raises(IntegrityError):
        keystore.unwrap(kek_id, wrapped[:keep], file_identity())


def test_wrapped_key_with_another_format_version_is_refused(keystore: Keystore) -> None:
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    with pytest.raises(IntegrityError):
        keystore.unwrap(kek_id, b"\x02" + wrapped[1:], file_identity())


@pytest.mark.parametrize("kek_id", ["", "local", "kms:", "kms:alias/x", "other:v1", "local:v1/.."])
def test_malformed_kek_id_is_refused(keystore: Keystore, kek_id: str) -> None:
    _, wrapped = keystore.wrap(DATA_KEY, file_identity())
    with pytest.raises(IntegrityError):
        keystore.unwrap(kek_id, wrapped, file_identity())


@pytest.mark.parametrize(
    "kek_id",
    [
        "local:v9",
        "kms:arn:aws:kms:eu-central-1:123456789012:key/00000000-0000-0000-0000-000000000000",
        "kms:alias/x",
        "",
    ],
)
def test_a_kek_the_keystore_does_not_have_is_not_held(keystore: Keystore, kek_id: str) -> None:
    assert not keystore.holds(kek_id)
