"""The local keystore: data keys rest only wrapped, bound to their file, under a versioned KEK."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.crypto.keystore import LocalKeystore
from gateway.errors import IntegrityError, NotFound, Unavailable

DATA_KEY = bytes(range(32))


def file_identity(**changes: str) -> dict[str, str]:
    identity = {
        "model": "acme/frontier-1",
        "revision": "r1",
        "path": "weights/model-00001-of-00002.safetensors",
        "file_version": "5b1e0c7d9f2a4e6b8c3d1a0f7e9b2c4d",
    }
    return {**identity, **changes}


@pytest.fixture
def keystore(tmp_path: Path) -> LocalKeystore:
    store = LocalKeystore(tmp_path / "keys")
    assert store.create() == "local:v1"
    return store


def test_wrapped_key_unwraps_for_its_own_file(keystore: LocalKeystore) -> None:
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    assert kek_id == "local:v1"
    assert DATA_KEY not in wrapped
    assert keystore.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY


def test_wrapped_blob_carries_a_format_version_byte(keystore: LocalKeystore) -> None:
    _, wrapped = keystore.wrap(DATA_KEY, file_identity())
    # version byte || 12-byte nonce || 32-byte key || 16-byte tag
    assert wrapped[0] == 1
    assert len(wrapped) == 1 + 12 + 32 + 16


def test_wrapping_twice_never_reuses_a_nonce(keystore: LocalKeystore) -> None:
    _, first = keystore.wrap(DATA_KEY, file_identity())
    _, second = keystore.wrap(DATA_KEY, file_identity())
    assert first[1:13] != second[1:13]
    assert first != second


# A wrapped key copied onto another file's row: test_keystore_contract.py, for every keystore.


def test_rotation_keeps_old_wraps_readable_and_wraps_new_keys_under_the_new_kek(
    keystore: LocalKeystore,
) -> None:
    old_id, old_wrapped = keystore.wrap(DATA_KEY, file_identity())
    assert keystore.create() == "local:v2"
    new_id, new_wrapped = keystore.wrap(DATA_KEY, file_identity())
    assert (old_id, new_id) == ("local:v1", "local:v2")
    assert keystore.unwrap(old_id, old_wrapped, file_identity()) == DATA_KEY
    assert keystore.unwrap(new_id, new_wrapped, file_identity()) == DATA_KEY
    # Re-wrapping (what rotation does to each row) needs no re-encryption of weights.
    rewrapped_id, rewrapped = keystore.wrap(
        keystore.unwrap(old_id, old_wrapped, file_identity()), file_identity()
    )
    assert rewrapped_id == "local:v2"
    assert keystore.unwrap(rewrapped_id, rewrapped, file_identity()) == DATA_KEY


def test_wrapped_key_relabelled_with_another_kek_version_fails(keystore: LocalKeystore) -> None:
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    keystore.create()
    assert kek_id == "local:v1"
    with pytest.raises(IntegrityError):
        keystore.unwrap("local:v2", wrapped, file_identity())


def test_wrapped_key_relabelled_to_a_copy_of_its_kek_fails(
    keystore: LocalKeystore, tmp_path: Path
) -> None:
    # The KEK id is in the associated data, not only used to pick the key file:
    # even a version holding identical key bytes does not accept a relabelled row.
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    kek_dir = tmp_path / "keys" / "kek"
    (kek_dir / "v2.key").write_bytes((kek_dir / "v1.key").read_bytes())
    assert keystore.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY
    with pytest.raises(IntegrityError):
        keystore.unwrap("local:v2", wrapped, file_identity())


@pytest.mark.parametrize("position", [0, 1, 12, 13, 44, 60])
def test_corrupted_wrapped_key_fails(keystore: LocalKeystore, position: int) -> None:
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    corrupted = bytearray(wrapped)
    corrupted[position] ^= 0x01
    with pytest.raises(IntegrityError):
        keystore.unwrap(kek_id, bytes(corrupted), file_identity())


@pytest.mark.parametrize("length", [0, 13, 20, 28, 60])
def test_truncated_wrapped_key_fails(keystore: LocalKeystore, length: int) -> None:
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    with pytest.raises(IntegrityError):
        keystore.unwrap(kek_id, wrapped[:length], file_identity())


@pytest.mark.parametrize("length", [1, 2, 5, 8])
def test_wrapped_key_truncated_into_the_nonce_fails_with_the_opaque_error(
    keystore: LocalKeystore, length: int
) -> None:
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    with pytest.raises(IntegrityError):
        keystore.unwrap(kek_id, wrapped[:length], file_identity())


@pytest.mark.parametrize(
    "kek_id", ["", "local", "local:", "local:1", "local:v", "local:vx", "kms:v1", "local:v1/../v1"]
)
def test_malformed_kek_id_fails(keystore: LocalKeystore, kek_id: str) -> None:
    _, wrapped = keystore.wrap(DATA_KEY, file_identity())
    with pytest.raises(IntegrityError):
        keystore.unwrap(kek_id, wrapped, file_identity())


def test_unwrap_under_a_kek_that_is_gone_reports_unavailable(keystore: LocalKeystore) -> None:
    _, wrapped = keystore.wrap(DATA_KEY, file_identity())
    with pytest.raises(Unavailable):
        keystore.unwrap("local:v9", wrapped, file_identity())


def test_gateway_without_a_keystore_fails_closed(tmp_path: Path) -> None:
    store = LocalKeystore(tmp_path / "nowhere")
    with pytest.raises(Unavailable, match="keys init"):
        store.check()
    with pytest.raises(Unavailable):
        store.wrap(DATA_KEY, file_identity())


def test_unreadable_current_kek_fails_closed(tmp_path: Path) -> None:
    store = LocalKeystore(tmp_path / "keys")
    store.create()
    # A directory where the key file should be: present by name, unreadable as a file.
    (tmp_path / "keys" / "kek" / "v1.key").unlink()
    (tmp_path / "keys" / "kek" / "v1.key").mkdir()
    with pytest.raises(Unavailable):
        store.check()


def test_kek_files_are_owner_only(tmp_path: Path) -> None:
    store = LocalKeystore(tmp_path / "keys")
    store.create()
    store.create()
    kek_dir = tmp_path / "keys" / "kek"
    assert stat.S_IMODE(kek_dir.stat().st_mode) == 0o700
    for version in ("v1", "v2"):
        path = kek_dir / f"{version}.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(path.read_bytes()) == 32
    assert (kek_dir / "v1.key").read_bytes() != (kek_dir / "v2.key").read_bytes()


def test_new_kek_version_never_overwrites_an_existing_one(tmp_path: Path) -> None:
    store = LocalKeystore(tmp_path / "keys")
    store.create()
    before = (tmp_path / "keys" / "kek" / "v1.key").read_bytes()
    # A v2 that appeared on disk (another operator, a restored backup) is
    # taken into account: the new version is v3, and no key file is rewritten.
    v2 = os.urandom(32)
    (tmp_path / "keys" / "kek" / "v2.key").write_bytes(v2)
    assert store.create() == "local:v3"
    assert (tmp_path / "keys" / "kek" / "v2.key").read_bytes() == v2
    assert (tmp_path / "keys" / "kek" / "v1.key").read_bytes() == before


def test_current_kek_is_the_newest_version_and_advance_makes_a_new_one(
    keystore: LocalKeystore,
) -> None:
    assert keystore.current_id() == "local:v1"
    assert keystore.advance() == "local:v2"
    assert keystore.current_id() == "local:v2"
    assert keystore.known_ids() == ["local:v1", "local:v2"]
    assert keystore.wrap(DATA_KEY, file_identity())[0] == "local:v2"


def test_retired_kek_stops_unwrapping_at_once_and_its_file_is_kept(
    keystore: LocalKeystore, tmp_path: Path
) -> None:
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    keystore.advance()
    assert keystore.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY  # read and remembered
    keystore.retire(kek_id)
    with pytest.raises(Unavailable):
        keystore.unwrap(kek_id, wrapped, file_identity())
    assert keystore.known_ids() == ["local:v2"]
    retired = tmp_path / "keys" / "kek" / "retired"
    assert (retired / "v1.key").is_file()
    assert stat.S_IMODE(retired.stat().st_mode) == 0o700


def test_a_new_version_never_reuses_a_retired_versions_number(keystore: LocalKeystore) -> None:
    keystore.advance()
    keystore.advance()
    keystore.retire("local:v2")
    # v3 is current; a restored v2 must not be shadowed by a different key named v2.
    assert keystore.advance() == "local:v4"


@pytest.mark.parametrize("kek_id", ["local:v7", "local:v1/../v1", "kms:v1", ""])
def test_retiring_a_kek_the_keystore_does_not_hold_is_refused(
    keystore: LocalKeystore, kek_id: str
) -> None:
    with pytest.raises(NotFound):
        keystore.retire(kek_id)
    assert keystore.known_ids() == ["local:v1"]
