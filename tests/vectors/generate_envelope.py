"""Generate the v2 envelope known-answer vectors ``tests/vectors/envelope-v2-<kem>.json``.

Run from the repository root::

    .venv/bin/python tests/vectors/generate_envelope.py           # write missing or stale
    .venv/bin/python tests/vectors/generate_envelope.py --check   # verify only, exit 1 if stale

Every input is fixed: the recipient's private key, the grant key, the grant,
each file's data key and nonce, and for X25519 the HPKE ephemeral key. The
library's HPKE draws its own ephemeral key and offers no way to fix it, so the
X25519 sealed grant key is made by the independent RFC 9180 implementation in
``tests/crypto/hpke_reference.py``; that vector is the same on every run. The
hybrid's sealed grant key is whatever the library produced on the run that
wrote the file (there is no independent X-Wing implementation here); a stored
hybrid vector is kept as long as it still opens. The wrapped file keys come
from the gateway's own ``GrantSealer`` with the fixed grant key and nonces,
and the tests rebuild them a second way, from plain HKDF and AES-GCM.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import cryptography
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from gateway.crypto.envelope import (
    V2,
    GrantBinding,
    GrantOpener,
    GrantSealer,
    file_wrap_key,
)
from gateway.crypto.keyrelease import HYBRID, X25519, ClientKeyPair
from gateway.errors import WeightgateError
from tests.crypto import hpke_reference

VECTOR_DIR = Path(__file__).resolve().parent
RECIPIENT_X25519 = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RECIPIENT_MLKEM768_SEED = bytes(range(64))
EPHEMERAL_X25519 = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
GRANT_KEY = bytes(range(0xA0, 0xC0))
GRANT = {
    "grant_id": "8c1f0e0d9a7b6c5d4e3f2a1b0c9d8e7f",
    "subject": "anna",
    "model": "acme/frontier-1",
    "revision": "r1",
    "expires_at": "2026-03-02T09:30:00+00:00",
}
FILES = [
    {
        "path": "config.json",
        "file_version": "00112233445566778899aabbccddeeff",
        "data_key": bytes(range(0x00, 0x20)).hex(),
        "nonce": bytes(range(0x40, 0x4C)).hex(),
    },
    {
        "path": "model-00001-of-00002.safetensors",
        "file_version": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "data_key": bytes(range(0x20, 0x40)).hex(),
        "nonce": bytes(range(0x50, 0x5C)).hex(),
    },
    {
        "path": "model-00002-of-00002.safetensors",
        "file_version": "ffeeddccbbaa99887766554433221100",
        "data_key": bytes(range(0x60, 0x80)).hex(),
        "nonce": bytes(range(0x60, 0x6C)).hex(),
    },
]


def vector_path(kem: str) -> Path:
    return VECTOR_DIR / f"envelope-v2-{'x25519' if kem == X25519 else 'hybrid'}.json"


def binding() -> GrantBinding:
    return GrantBinding(
        grant_id=GRANT["grant_id"],
        subject=GRANT["subject"],
        model=GRANT["model"],
        revision=GRANT["revision"],
        expires_at=datetime.fromisoformat(GRANT["expires_at"]),
    )


def recipient(kem: str) -> ClientKeyPair:
    quantum = (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(RECIPIENT_MLKEM768_SEED) if kem == HYBRID else None
    )
    return ClientKeyPair(X25519PrivateKey.from_private_bytes(RECIPIENT_X25519), quantum)


def fixed_random() -> Iterator[bytes]:
    """What ``GrantSealer`` draws, in order: the grant key, then the files' nonces at once."""
    yield GRANT_KEY
    yield b"".join(bytes.fromhex(file["nonce"]) for file in FILES)


def seal(kem: str) -> GrantSealer:
    """The gateway's sealer, with every random draw replaced by the fixed inputs."""
    draws = fixed_random()

    def draw(size: int) -> bytes:
        value = next(draws)
        if len(value) != size:
            raise AssertionError(
                f"the sealer asked for {size} bytes, the vector holds {len(value)}"
            )
        return value

    keys = recipient(kem)
    return GrantSealer(V2, keys.private.public_key(), binding(), random=draw)


def build(kem: str, sealed_grant_key: bytes | None = None) -> dict[str, Any]:
    keys = recipient(kem)
    sealer = seal(kem)
    wrapped = sealer.seal_file_keys(
        [(bytes.fromhex(f["data_key"]), f["path"], f["file_version"]) for f in FILES]
    )
    info = binding().grant_key_info()
    if kem == X25519:
        sealed_grant_key = hpke_reference.seal(
            GRANT_KEY,
            keys.classical.public_key(),
            info,
            X25519PrivateKey.from_private_bytes(EPHEMERAL_X25519),
        )
    elif sealed_grant_key is None:
        assert sealer.sealed_grant_key is not None
        sealed_grant_key = sealer.sealed_grant_key
    vector: dict[str, Any] = {
        "description": (
            f"A weightgate envelope v2 grant of {len(FILES)} files, recipient KEM {kem}: "
            "the grant key sealed once, each data key wrapped under it."
        ),
        "provenance": (
            "generated by tests/vectors/generate_envelope.py with cryptography "
            f"{cryptography.__version__}; "
            + (
                "sealed grant key from tests/crypto/hpke_reference.py with a fixed ephemeral key"
                if kem == X25519
                else "sealed grant key as the library's HPKE produced it"
            )
        ),
        "envelope": V2,
        "recipient_kem": kem,
        "recipient_x25519_private": RECIPIENT_X25519.hex(),
        "recipient_public": keys.public_bytes.hex(),
        "grant": GRANT,
        "grant_key": GRANT_KEY.hex(),
        "grant_key_info": info.hex(),
        "sealed_grant_key": sealed_grant_key.hex(),
        "wrap_key": file_wrap_key(GRANT_KEY).hex(),
        "files": [
            {
                **file,
                "aad": binding().file_key_aad(file["path"], file["file_version"]).hex(),
                "wrapped_key": wrapped_key.hex(),
            }
            for file, wrapped_key in zip(FILES, wrapped, strict=True)
        ],
    }
    if kem == X25519:
        vector["ephemeral_x25519_private"] = EPHEMERAL_X25519.hex()
    else:
        vector["recipient_mlkem768_seed"] = RECIPIENT_MLKEM768_SEED.hex()
    if not opens(vector):
        raise SystemExit(f"the gateway does not open its own {kem} vector")
    return vector


def opens(vector: dict[str, Any]) -> bool:
    """Whether the gateway's client code opens every file key of a stored vector."""
    try:
        opener = GrantOpener(
            V2,
            recipient(vector["recipient_kem"]).private,
            binding(),
            bytes.fromhex(vector["sealed_grant_key"]),
        )
        return all(
            opener.open_file_key(bytes.fromhex(f["wrapped_key"]), f["path"], f["file_version"])
            == bytes.fromhex(f["data_key"])
            for f in vector["files"]
        )
    except (WeightgateError, KeyError, TypeError, ValueError):
        return False


def _load(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify only; exit 1 if stale")
    mode.add_argument("--force", action="store_true", help="rewrite every vector")
    args = parser.parse_args(argv)
    stale = 0
    for kem in (X25519, HYBRID):
        path = vector_path(kem)
        existing = None if args.force else _load(path)
        keep = None
        if existing is not None and opens(existing):
            keep = bytes.fromhex(existing["sealed_grant_key"])
        fresh = build(kem, keep)
        if existing == fresh:
            print(f"kept    {path.name}")
            continue
        stale += 1
        if args.check:
            print(f"STALE   {path.name}")
            continue
        path.write_text(json.dumps(fresh, indent=2) + "\n")
        print(f"wrote   {path.name}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
