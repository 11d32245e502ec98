"""Signed checkpoints in the C2SP tlog-checkpoint / signed-note text format.

    <origin>\\n<tree size>\\n<base64 root hash>\\n
    \\n
    — <key name> <base64(4-byte key id || Ed25519 signature)>\\n

and the witness cosignatures (c2sp.org/tlog-cosignature, Ed25519, type 0x04)
that other parties append below the log's own signature.

Pure: parsing, signing and verifying take keys, text and times, nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.errors import IntegrityError, InvalidInput

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
        except ValueError:  # binascii.Error, and ValueError for non-ASCII text
            continue
        if blob[:4] != expected_id:
            continue
        try:
            public_key.verify(blob[4:], body.encode())
        except InvalidSignature:
            raise IntegrityError(f"checkpoint signature by {name} is invalid") from None
        return Checkpoint(origin, size, root)
    raise IntegrityError(f"checkpoint carries no signature by {name}")


# Signed notes and witness cosignatures ------------------------------------------

_COSIGNATURE_TYPE = b"\x04"
_MAX_TIMESTAMP = 2**63 - 1  # tlog-cosignature: "MUST NOT exceed 2^63 - 1"
# signed-note: verifiers MUST accept at least 16 signatures and SHOULD cap them;
# Go's note.Open refuses more than 100, so a note we write stays openable there.
_MAX_SIGNATURES = 100


@dataclass(frozen=True)
class NoteSignature:
    name: str
    blob: bytes  # 4-byte key id || signature
    encoded: str  # the base64 exactly as it appeared, so rewriting a note keeps it

    @classmethod
    def of(cls, name: str, blob: bytes) -> NoteSignature:
        return cls(name, blob, base64.b64encode(blob).decode())

    @property
    def line(self) -> str:
        return f"{_DASH} {self.name} {self.encoded}"


def valid_key_name(name: str) -> bool:
    # signed-note: "Key names MUST be non-empty and MUST NOT contain any
    # Unicode spaces or plus (U+002B) characters."
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _parse_signature(line: str) -> NoteSignature | None:
    prefix = f"{_DASH} "
    if not line.startswith(prefix):
        return None
    name, _, encoded = line[len(prefix) :].partition(" ")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        return None
    # A key id and at least one byte of signature, as Go's note.Open demands.
    if not valid_key_name(name) or len(blob) < 5:
        return None
    return NoteSignature(name, blob, encoded)


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its signed text and its signature lines, or raise IntegrityError.

    Follows c2sp.org/signed-note and Go's note.Open: no control characters but
    newline, the text ends at the *last* blank line, and every line after it
    must be a well-formed signature. A note we cannot parse exactly as other
    verifiers do is refused rather than read generously.
    """
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise IntegrityError("signed note contains control characters")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n") or split + 2 == len(note):
        raise IntegrityError("not a signed note: no signatures after a blank line")
    text, lines = note[: split + 1], note[split + 2 : -1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise IntegrityError(f"signed note carries more than {_MAX_SIGNATURES} signatures")
    signatures = [_parse_signature(line) for line in lines]
    if any(signature is None for signature in signatures):
        raise IntegrityError("signed note has a malformed signature line")
    return text, [signature for signature in signatures if signature is not None]


def _typed_key_id(name: str, signature_type: bytes, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + signature_type + raw).digest()[:4]


def cosignature_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The witness's key id: type 0x04, so its plain Ed25519 id (0x01) never matches."""
    return _typed_key_id(name, _COSIGNATURE_TYPE, public_key)


def _cosigned_message(text: str, timestamp: int) -> bytes:
    # The header line is domain separation: a cosignature can never be
    # replayed as the log's own signature over the same body, or vice versa.
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(note: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    """The cosignature/v1 line (no newline) witness ``name`` makes on ``note`` at ``timestamp``.

    ``note`` is the log's signed checkpoint. Cosigning asserts that, at
    ``timestamp``, this is the largest consistent tree the witness has seen for
    the origin, so the caller must have checked consistency first.
    """
    if not valid_key_name(name):
        raise InvalidInput(f"{name!r} is not a valid signed-note key name")
    if isinstance(timestamp, bool) or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise InvalidInput(f"cosignature timestamp {timestamp} is out of range")
    try:
        text, _ = split_note(note)
    except IntegrityError as exc:
        raise InvalidInput(f"cannot cosign: {exc.message}") from None
    if text.count("\n") < 3:
        raise InvalidInput("cannot cosign: the note is not a checkpoint")
    signature = key.sign(_cosigned_message(text, timestamp))
    blob = cosignature_key_id(name, key.public_key()) + timestamp.to_bytes(8, "big") + signature
    return NoteSignature.of(name, blob).line


def verify_cosignature(note: str, name: str, public_key: Ed25519PublicKey) -> int:
    """Check witness ``name``'s cosignature on ``note``; return its timestamp, else IntegrityError.

    Only the witness's signature is checked: pair this with ``verify`` for the
    log's own, which also parses the checkpoint body. Signatures by other keys
    are ignored; a repeated signature by this key is ignored after the first,
    as Go's note.Open does, and a bad first one rejects the note.
    """
    text, signatures = split_note(note)
    expected_id = cosignature_key_id(name, public_key)
    for signature in signatures:
        if signature.name != name or signature.blob[:4] != expected_id:
            continue
        if len(signature.blob) != 4 + 8 + 64:
            raise IntegrityError(f"cosignature by {name} has the wrong length")
        timestamp = int.from_bytes(signature.blob[4:12], "big")
        if timestamp > _MAX_TIMESTAMP:
            raise IntegrityError(f"cosignature by {name} has an impossible timestamp")
        try:
            public_key.verify(signature.blob[12:], _cosigned_message(text, timestamp))
        except InvalidSignature:
            raise IntegrityError(f"cosignature by {name} is invalid") from None
        return timestamp
    raise IntegrityError(f"checkpoint carries no cosignature by {name}")


def add_signature(note: str, line: str) -> str:
    """Append one signature line to a signed note, as Go's note.Sign would.

    A line from a key (name and key id) that already signed replaces the old
    one, and goes last: two signatures by one key leave verifiers to pick one,
    and Go's verifier only ever reads the first. The line is not verified
    here; check it (``verify_cosignature``) before trusting the result.
    """
    try:
        text, signatures = split_note(note)
    except IntegrityError as exc:
        raise InvalidInput(f"cannot add a signature: {exc.message}") from None
    added = _parse_signature(line.removesuffix("\n"))
    if added is None or "\n" in line.removesuffix("\n"):
        raise InvalidInput("not a single signed-note signature line")
    kept = [s for s in signatures if (s.name, s.blob[:4]) != (added.name, added.blob[:4])]
    if len(kept) >= _MAX_SIGNATURES:
        raise InvalidInput(f"a signed note carries at most {_MAX_SIGNATURES} signatures")
    return text + "\n" + "".join(f"{s.line}\n" for s in [*kept, added])
