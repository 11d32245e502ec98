"""The witness: a second key, in another trust domain, that vouches the log never forked.

The security team runs ``weightgate audit witness`` with its own key. Each run
fetches the gateway's latest signed checkpoint, checks it extends the last
one the witness cosigned (a consistency proof), and only then cosigns it. A
gateway that rewrote or forked its history would need the witness to cosign
a checkpoint inconsistent with one it already saw, which it never does.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.audit import checkpoint, proofs
from gateway.client.gateway_api import GatewayClient
from gateway.errors import Conflict, IntegrityError


@dataclass(frozen=True)
class WitnessOutcome:
    previous_size: int
    size: int
    note: str


def witness_once(
    client: GatewayClient,
    *,
    origin: str,
    log_key: Ed25519PublicKey,
    name: str,
    key: Ed25519PrivateKey,
    state: Path,
) -> WitnessOutcome:
    """Check the gateway's latest checkpoint against the last one cosigned, then cosign it."""
    note = client.text("GET", "/v1/audit/checkpoint")
    latest = checkpoint.verify(note, origin, log_key)
    previous = (
        checkpoint.verify(state.read_text(encoding="utf-8"), origin, log_key)
        if (state.is_file())
        else None
    )
    if previous is not None:
        if latest.size < previous.size:
            raise IntegrityError(f"the log shrank from {previous.size} to {latest.size}: refusing")
        path = client.call(
            "GET", "/v1/audit/proofs/consistency", params={"from": previous.size, "to": latest.size}
        )["proof"]
        proofs.verify_consistency(
            previous.size,
            latest.size,
            previous.root,
            latest.root,
            [base64.b64decode(h) for h in path],
        )
    line = checkpoint.cosign(note, name, key, int(time.time()))
    stored = client.call(
        "POST", "/v1/audit/cosignatures", json={"size": latest.size, "cosignature": line}
    )
    if stored.get("size") != latest.size:
        raise Conflict("the gateway did not store the cosignature")
    state.write_text(note, encoding="utf-8")
    return WitnessOutcome(previous.size if previous else 0, latest.size, note)
