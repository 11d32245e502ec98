"""The gateway's own keys in ``WEIGHTGATE_KEYS_DIR``: created by ``keys init``, loaded at start."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.crypto.keyfiles import ed25519_to_pem, load_ed25519, read_secret, write_secret
from gateway.crypto.keystore import LocalKeystore
from gateway.errors import NotFound
from gateway.identity import dev_issuer as development

AUDIT_SIGNING_KEY = "audit-ed25519.pem"
AUDIT_HMAC_KEY = "audit-hmac.key"
URL_HMAC_KEY = "url-hmac.key"


def init_keys(keys_dir: Path, *, dev_issuer: bool = False) -> list[str]:
    """Create whatever key is missing; never touch one that exists. Returns what was created.

    The development token issuer only if ``dev_issuer``: whoever reads its key mints any token.
    """
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkdir's mode applies only to a directory it creates: one that already
    # existed (made by hand, at 0755) would let any local user list and read keys.
    keys_dir.chmod(0o700)
    created = []
    keystore = LocalKeystore(keys_dir)
    if not (keys_dir / "kek").is_dir() or not any((keys_dir / "kek").glob("v*.key")):
        created.append(f"key-encryption key {keystore.create()}")
    if not (keys_dir / AUDIT_SIGNING_KEY).exists():
        write_secret(keys_dir / AUDIT_SIGNING_KEY, ed25519_to_pem(Ed25519PrivateKey.generate()))
        created.append("audit signing key (Ed25519)")
    for name, label in ((AUDIT_HMAC_KEY, "audit hashing key"), (URL_HMAC_KEY, "URL signing key")):
        if not (keys_dir / name).exists():
            write_secret(keys_dir / name, os.urandom(32))
            created.append(label)
    if dev_issuer and not (keys_dir / development.JWKS_FILE).exists():
        development.create(keys_dir)
        created.append("development token issuer (EdDSA)")
    return created


@dataclass(frozen=True)
class GatewayKeys:
    audit_signer: Ed25519PrivateKey
    audit_hmac: bytes
    url_hmac: bytes

    @classmethod
    def load(cls, keys_dir: Path) -> GatewayKeys:
        # A directory without the signing key is a mistyped WEIGHTGATE_KEYS_DIR (or keys
        # never made), named as such; a partial one fails below on the missing file.
        if not (keys_dir / AUDIT_SIGNING_KEY).exists():
            raise NotFound(
                f"no gateway keys in {keys_dir.resolve()} (WEIGHTGATE_KEYS_DIR); create them "
                "with `weightgate keys init`, or point WEIGHTGATE_KEYS_DIR at the gateway's keys"
            )
        return cls(
            audit_signer=load_ed25519(keys_dir / AUDIT_SIGNING_KEY),
            audit_hmac=read_secret(keys_dir / AUDIT_HMAC_KEY),
            url_hmac=read_secret(keys_dir / URL_HMAC_KEY),
        )
