"""Offline receipts for one log entry in the c2sp.org/tlog-proof@v1 text format. Pure.

    c2sp.org/tlog-proof@v1
    [extra <base64 opaque data>]
    index <leaf index>
    <base64 hash>            (zero or more: the RFC 6962 audit path, leaf's sibling first)

    <the signed checkpoint, verbatim, cosignatures included>

A receipt lets a security team check, with no access to the gateway, that an
event is in the log the gateway signed (and, with cosignatures, the log every
witness saw). The parser is strict and refuses anything another
implementation might read differently: one text, one meaning.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import checkpoint
from gateway.audit.checkpoint import Checkpoint
from gateway.audit.merkle import HASH_SIZE
from gateway.audit.proofs import verify_inclusion
from gateway.errors import IntegrityError, InvalidInput

HEADER = "c2sp.org/tlog-proof@v1"
_MAX_INDEX = 2**64 - 1  # indices are uint64 in every tlog implementation
# A tree of at most 2**64 - 1 leaves is at most 64 levels deep.
_MAX_PROOF = 64
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Receipt:
    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    # Not authenticated by anything: the spec forbids trusting it implicitly.
    extra: bytes | None = None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _strict_b64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise IntegrityError(f"receipt {what} is not base64") from None
    # Only the canonical encoding, so one receipt has exactly one spelling.
    if _b64(data) != text:
        raise IntegrityError(f"receipt {what} is not canonical base64")
    return data


def format_receipt(
    index: int, proof: Sequence[bytes], checkpoint_note: str, extra: bytes | None = None
) -> str:
    """The tlog-proof text for leaf ``index`` under the signed ``checkpoint_note``."""
    if isinstance(index, bool) or not 0 <= index <= _MAX_INDEX:
        raise InvalidInput(f"log index {index} is out of range")
    if len(proof) > _MAX_PROOF or any(len(h) != HASH_SIZE for h in proof):
        raise InvalidInput("an inclusion proof is at most 64 hashes of 32 bytes")
    try:
        text, _ = checkpoint.split_note(checkpoint_note)
    except IntegrityError as exc:
        raise InvalidInput(f"receipt checkpoint: {exc.message}") from None
    if text.startswith("\n"):
        raise InvalidInput("receipt checkpoint must start with its origin line")
    lines = [HEADER]
    if extra is not None:
        lines.append(f"extra {_b64(extra)}")
    lines.append(f"index {index}")
    lines.extend(_b64(h) for h in proof)
    return "\n".join(lines) + "\n\n" + checkpoint_note


def parse_receipt(text: str) -> Receipt:
    """Parse a tlog-proof receipt; raise IntegrityError on anything malformed. Verifies nothing."""
    # Past the end reads as "", which every check below refuses where it matters.
    lines = [*text.split("\n"), "", ""]
    if lines[0] != HEADER:
        raise IntegrityError(f"not a {HEADER} receipt")
    at = 1
    extra = None
    if lines[at].startswith("extra "):
        extra = _strict_b64(lines[at].removeprefix("extra "), "extra data")
        at += 1
    index_text = lines[at].removeprefix("index ") if lines[at].startswith("index ") else ""
    # int() would also take "+5", " 5", "0_5" and non-ASCII digits; the spec
    # says ASCII decimal without leading zeroes.
    if not _DECIMAL.fullmatch(index_text) or int(index_text) > _MAX_INDEX:
        raise IntegrityError("receipt index line is missing or malformed")
    at += 1
    try:
        blank = lines.index("", at)
    except ValueError:
        raise IntegrityError("receipt has no blank line before its checkpoint") from None
    if blank - at > _MAX_PROOF:
        raise IntegrityError("receipt inclusion proof is longer than any tree is deep")
    proof = tuple(_strict_b64(line, "proof hash") for line in lines[at:blank])
    if any(len(h) != HASH_SIZE for h in proof):
        raise IntegrityError("receipt proof hash is not 32 bytes")
    note = "\n".join(lines[blank + 1 : -2])
    signed_text, _ = checkpoint.split_note(note)
    if signed_text.startswith("\n"):
        raise IntegrityError("receipt checkpoint must start with its origin line")
    return Receipt(int(index_text), proof, note, extra)


def verify_receipt(
    receipt: Receipt, leaf: bytes, origin: str, public_key: Ed25519PublicKey
) -> Checkpoint:
    """Check the log's signature on the receipt's checkpoint, then the entry's inclusion in it.

    ``leaf`` is ``leaf_hash(entry)``. The log's key name is its origin, as
    tlog-checkpoint recommends and the gateway signs; a checkpoint for another
    origin is refused even under the right key. The proof is checked only
    against the signed root: a root and size from anywhere else prove nothing.
    Witness cosignatures, if a policy needs them, are checked on
    ``receipt.checkpoint_note`` with ``checkpoint.verify_cosignature``.
    """
    signed = checkpoint.verify(receipt.checkpoint_note, origin, public_key)
    if signed.origin != origin:
        raise IntegrityError(f"receipt checkpoint is for another log ({signed.origin})")
    verify_inclusion(leaf, receipt.index, signed.size, receipt.proof, signed.root)
    return signed
