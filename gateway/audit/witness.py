"""Cosignatures from witnesses: checked against the configured witness keys, then kept.

See ``gateway.client.witness`` for the witness's side.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import checkpoint
from gateway.audit.checkpoint_store import CheckpointStore
from gateway.errors import InvalidInput, NotFound


def accept_cosignature(
    store: CheckpointStore, witnesses: dict[str, Ed25519PublicKey], size: int, line: str
) -> str:
    """Verify a witness's cosignature on the checkpoint of ``size`` and keep it."""
    note = store.note_at(size)
    if note is None:
        raise NotFound(f"no checkpoint of size {size}")
    name = line.removeprefix("\u2014 ").split(" ", 1)[0]
    public_key = witnesses.get(name)
    if public_key is None:
        raise InvalidInput(f"{name!r} is not a configured witness")
    cosigned = checkpoint.add_signature(note, line)
    checkpoint.verify_cosignature(cosigned, name, public_key)
    return store.add_cosignature(size, line)
