"""Key material on disk: owner-only from the first byte, and never clobbered."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from gateway.crypto.keyfiles import ed25519_to_pem, load_ed25519, read_secret, write_secret
from gateway.crypto.keyring import init_keys
from gateway.errors import Conflict, Unavailable


def test_secret_is_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "hmac.key"
    write_secret(path, b"\x01" * 32)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_secret(path) == b"\x01" * 32


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "url-hmac.key"
    write_secret(path, b"original")
    with pytest.raises(Conflict, match="refusing to overwrite"):
        write_secret(path, b"attacker-chosen")
    assert path.read_bytes() == b"original"


def test_symlink_planted_at_a_key_path_is_not_followed(tmp_path: Path) -> None:
    # O_EXCL refuses an existing name even when it is a dangling symlink, so a
    # planted link cannot redirect a new key to a file the attacker can read.
    target = tmp_path / "attacker-readable"
    link = tmp_path / "audit-hmac.key"
    link.symlink_to(target)
    with pytest.raises(Conflict):
        write_secret(link, b"\x02" * 32)
    assert not target.exists()


def test_missing_key_file_reports_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="keys init"):
        read_secret(tmp_path / "absent.key")


def test_signing_key_round_trips_through_pem(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    write_secret(tmp_path / "audit-ed25519.pem", ed25519_to_pem(key))
    loaded = load_ed25519(tmp_path / "audit-ed25519.pem")
    assert loaded.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()


def test_key_of_another_type_swapped_in_for_the_signing_key_is_refused(tmp_path: Path) -> None:
    pem = X25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    write_secret(tmp_path / "audit-ed25519.pem", pem)
    with pytest.raises(Unavailable, match="Ed25519"):
        load_ed25519(tmp_path / "audit-ed25519.pem")


def test_an_existing_world_readable_keys_directory_is_closed_by_keys_init(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir(mode=0o755)
    keys_dir.chmod(0o755)  # whatever the umask made of it
    init_keys(keys_dir)
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
