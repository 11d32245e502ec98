"""Signed checkpoints in the C2SP tlog-checkpoint / signed-note text format.

    <origin>\\n<tree size>\\n<base64 root hash>\\n
    \\n
    — <key name> <base64(4-byte key id || Ed25519 signature)>\\n

Pure: parsing, signing and verifying take keys and text, nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.errors import IntegrityError

_ED25519_TYPE = b"\x01"
_DASH = "\u2014"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + _ED25519_TYPE + raw).digest()[:4]


def sign(checkpoint: Checkpoint, name: str, private_key: Ed25519PrivateKey) -> str:
    body = checkpoint.body()
    signature = private_key.sign(body.encode())
    blob = base64.b64encode(key_id(name, private_key.public_key()) + signature).decode()
    return f"{body}\n{_DASH} {name} {blob}\n"


def verify(note: str, name: str, public_key: Ed25519PublicKey) -> Checkpoint:
    """Parse ``note`` and check ``name``'s signature on it; raises IntegrityError otherwise."""
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        raise IntegrityError("checkpoint is not a signed note")
    body += "\n"
    lines = body.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise IntegrityError("checkpoint body must be exactly origin, size and root")
    origin, size_text, root_text = lines[:3]
    try:
        size = int(size_text)
        root = base64.b64decode(root_text, validate=True)
    except (ValueError, binascii.Error):
        raise IntegrityError("checkpoint size or root is malformed") from None
    if size < 0 or str(size) != size_text or len(root) != 32:
        raise IntegrityError("checkpoint size or root is malformed")
    expected_id = key_id(name, public_key)
    for line in signatures.splitlines():
        prefix = f"{_DASH} {name} "
        if not line.startswith(prefix):
            continue
        try:
            blob = base64.b64decode(line[len(prefix) :], validate=True)
        except binascii.Error:
            continue
        if blob[:4] != expected_id:
            continue
        try:
            public_key.verify(blob[4:], body.encode())
        except InvalidSignature:
            raise IntegrityError(f"checkpoint signature by {name} is invalid") from None
        return Checkpoint(origin, size, root)
    raise IntegrityError(f"checkpoint carries no signature by {name}")
