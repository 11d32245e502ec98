"""Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519, type 0x04) and adding lines to notes.

A witness cosignature is what turns "the gateway says" into "the gateway
showed everyone the same log": a log that shows one history to its auditors
and another to a downloader is caught when a witness will not cosign both.

Known answers:

* ``FOREIGN_NOTE`` is a real checkpoint of the Certificate Transparency
  staging log ``arche2025h1.staging.ct.transparency.dev`` cosigned by live
  witnesses, with the verifier keys of the log and of the witness
  ``remora.n621.de``. Copied from florolf/tlog-scales ``tests/test_signing.py``
  (``TestCheckpointVerification``), an independent Python implementation that
  verifies it; the cosignatures were made by the witnesses' own software.
* Every line we make is also rebuilt here from the spec text (hashlib key id,
  hand-built message, ``cryptography`` verify), so a bug shared by ``cosign``
  and ``verify_cosignature`` cannot hide.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.audit import checkpoint
from gateway.audit.checkpoint import Checkpoint
from gateway.errors import IntegrityError, InvalidInput

DASH = "\u2014"
ORIGIN = "weightgate.test/audit"
WITNESS = "witness.test/w1"
ROOT = hashlib.sha256(b"some root").digest()
TIME = 1_767_225_600  # 2026-01-01T00:00:00Z
# RFC 8032 section 7.1 TEST 1 secret key: a key anchored outside this project.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")

FOREIGN_ORIGIN = "arche2025h1.staging.ct.transparency.dev"
FOREIGN_LOG_VKEY = f"{FOREIGN_ORIGIN}+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f"
FOREIGN_WITNESS_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
FOREIGN_BODY = f"{FOREIGN_ORIGIN}\n1432088532\nU7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n"
FOREIGN_SIGNATURES = [
    f"{FOREIGN_ORIGIN} "
    "zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzal"
    "ApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=",
    f"{FOREIGN_ORIGIN} "
    "ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bf"
    "TW9g8Ei59RA23oHP7Ry1k3ZFWwQ=",
    "transparency.dev/DEV:witness-little-garden "
    "2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4"
    "AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==",
    "witness1.smartit.nu/witness1 "
    "pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75"
    "W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==",
    "remora.n621.de "
    "2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI"
    "+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==",
    "witness.stagemole.eu "
    "Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvV"
    "r+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==",
]
FOREIGN_NOTE = FOREIGN_BODY + "\n" + "".join(f"{DASH} {line}\n" for line in FOREIGN_SIGNATURES)


def _vkey(vkey: str) -> tuple[str, bytes, int, Ed25519PublicKey]:
    """Parse a C2SP vkey ``name+hexid+base64(type || key)``."""
    name, key_hex, encoded = vkey.split("+", 2)
    typed = base64.b64decode(encoded)
    return name, bytes.fromhex(key_hex), typed[0], Ed25519PublicKey.from_public_bytes(typed[1:])


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _independent_cosignature(body: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    """The line, built from the tlog-cosignature text alone."""
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + _raw(key.public_key())).digest()[:4]
    message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
    blob = key_id + timestamp.to_bytes(8, "big") + key.sign(message)
    return f"{DASH} {name} {_b64(blob)}"


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def witness_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def note(log_key: Ed25519PrivateKey) -> str:
    return checkpoint.sign(Checkpoint(ORIGIN, 42, ROOT), ORIGIN, log_key)


def _cosigned(note: str, key: Ed25519PrivateKey, timestamp: int = TIME, name: str = WITNESS) -> str:
    return checkpoint.add_signature(note, checkpoint.cosign(note, name, key, timestamp))


def _blob(line: str) -> bytes:
    return base64.b64decode(line.rsplit(" ", 1)[1], validate=True)


def _with_line(note: str, line: str) -> str:
    return note + line + "\n"


# Round trip and the exact format --------------------------------------------------


def test_cosigned_checkpoint_verifies_for_witness_and_log(
    note: str, log_key: Ed25519PrivateKey, witness_key: Ed25519PrivateKey
) -> None:
    cosigned = _cosigned(note, witness_key)
    assert checkpoint.verify_cosignature(cosigned, WITNESS, witness_key.public_key()) == TIME
    # The witness's line must not disturb the log's own signature.
    assert checkpoint.verify(cosigned, ORIGIN, log_key.public_key()) == Checkpoint(ORIGIN, 42, ROOT)


def test_line_is_exactly_the_tlog_cosignature_format(
    note: str, witness_key: Ed25519PrivateKey
) -> None:
    line = checkpoint.cosign(note, WITNESS, witness_key, TIME)
    body = Checkpoint(ORIGIN, 42, ROOT).body()

    assert line == _independent_cosignature(body, WITNESS, witness_key, TIME)
    assert "\n" not in line
    assert line.startswith(f"{DASH} {WITNESS} ")
    blob = _blob(line)
    assert len(blob) == 4 + 8 + 64
    assert (
        blob[:4]
        == hashlib.sha256(WITNESS.encode() + b"\x0a\x04" + _raw(witness_key.public_key())).digest()[
            :4
        ]
    )
    assert blob[:4] == checkpoint.cosignature_key_id(WITNESS, witness_key.public_key())
    assert int.from_bytes(blob[4:12], "big") == TIME
    witness_key.public_key().verify(blob[12:], b"cosignature/v1\ntime 1767225600\n" + body.encode())


# Produced by _independent_cosignature with the RFC 8032 TEST 1 key; Ed25519 is
# deterministic, so the line is fixed. It pins the bytes against format drift.
FIXED_LINE = (
    f"{DASH} {WITNESS} JkyPhQAAAABpVbkA0RsyaDAz3Ym5nU9jyYFO3tTKDe1LPlJQT23HnqGTSWXyErngMScgFpio"
    "356nHJmH53e8r3i4t1Crl3gDBSYHBg=="
)


def test_cosignature_line_is_fixed_for_a_fixed_key_and_time() -> None:
    key = Ed25519PrivateKey.from_private_bytes(RFC8032_SEED)
    note = checkpoint.sign(Checkpoint(ORIGIN, 8, ROOT), ORIGIN, key)
    body = Checkpoint(ORIGIN, 8, ROOT).body()
    assert _independent_cosignature(body, WITNESS, key, TIME) == FIXED_LINE
    assert checkpoint.cosign(note, WITNESS, key, TIME) == FIXED_LINE
    # key id 264c8f85, then 1767225600 as a big-endian u64.
    assert _blob(FIXED_LINE)[:12].hex() == "264c8f85000000006955b900"


def test_line_appended_with_add_signature_is_the_note_plus_one_line(
    note: str, witness_key: Ed25519PrivateKey
) -> None:
    line = checkpoint.cosign(note, WITNESS, witness_key, TIME)
    assert checkpoint.add_signature(note, line) == note + line + "\n"
    assert checkpoint.add_signature(note, line + "\n") == note + line + "\n"


# Known answer from a live witness ----------------------------------------------------


def test_real_witness_cosignature_on_a_real_ct_checkpoint_verifies() -> None:
    name, key_id, key_type, public_key = _vkey(FOREIGN_WITNESS_VKEY)
    assert key_type == 0x04
    assert checkpoint.cosignature_key_id(name, public_key) == key_id
    assert checkpoint.verify_cosignature(FOREIGN_NOTE, name, public_key) == 1_779_573_024

    log_name, log_id, log_type, log_public = _vkey(FOREIGN_LOG_VKEY)
    assert log_type == 0x01
    assert checkpoint.key_id(log_name, log_public) == log_id
    assert checkpoint.verify(FOREIGN_NOTE, log_name, log_public).size == 1432088532


def test_real_cosignature_does_not_cover_another_tree_size() -> None:
    name, _, _, public_key = _vkey(FOREIGN_WITNESS_VKEY)
    forged = FOREIGN_NOTE.replace("\n1432088532\n", "\n1432088531\n")
    with pytest.raises(IntegrityError, match="invalid"):
        checkpoint.verify_cosignature(forged, name, public_key)


def test_we_do_not_claim_cosignatures_from_witnesses_we_do_not_trust() -> None:
    # The log's plain Ed25519 key (type 0x01) is not a cosigner key: the type
    # byte in the key id keeps one from being read as the other.
    log_name, _, _, log_public = _vkey(FOREIGN_LOG_VKEY)
    with pytest.raises(IntegrityError, match="no cosignature"):
        checkpoint.verify_cosignature(FOREIGN_NOTE, log_name, log_public)


# Forgeries ---------------------------------------------------------------------------


def test_cosignature_checked_against_the_wrong_witness_key(
    note: str, witness_key: Ed25519PrivateKey
) -> None:
    cosigned = _cosigned(note, witness_key)
    with pytest.raises(IntegrityError, match="no cosignature"):
        checkpoint.verify_cosignature(cosigned, WITNESS, Ed25519PrivateKey.generate().public_key())


def test_impostor_signature_under_the_witness_key_id(
    note: str, witness_key: Ed25519PrivateKey
) -> None:
    # The key id is a hint, not a proof: claiming the witness's id buys nothing.
    impostor = _independent_cosignature(
        Checkpoint(ORIGIN, 42, ROOT).body(), WITNESS, Ed25519PrivateKey.generate(), TIME
    )
    blob = _blob(impostor)
    blob = checkpoint.cosignature_key_id(WITNESS, witness_key.public_key()) + blob[4:]
    with pytest.raises(IntegrityError, match="invalid"):
        checkpoint.verify_cosignature(
            _with_line(note, f"{DASH} {WITNESS} {_b64(blob)}"), WITNESS, witness_key.public_key()
        )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("\n42\n", "\n43\n", id="size"),
        pytest.param(f"{ORIGIN}\n", "other.test/log\n", id="origin"),
        pytest.param(_b64(ROOT), _b64(hashlib.sha256(b"fork").digest()), id="root"),
    ],
)
def test_cosignature_moved_onto_an_altered_body(
    note: str, witness_key: Ed25519PrivateKey, old: str, new: str
) -> None:
    cosigned = _cosigned(note, witness_key)
    altered = cosigned.replace(old, new, 1)
    assert altered != cosigned
    with pytest.raises(IntegrityError):
        checkpoint.verify_cosignature(altered, WITNESS, witness_key.public_key())


@pytest.mark.parametrize("delta", [1, -1, 3600, 2**40])
def test_cosignature_with_an_altered_timestamp(
    note: str, witness_key: Ed25519PrivateKey, delta: int
) -> None:
    # A witness's "as of" time decides freshness; backdating or postdating it
    # must break the signature.
    blob = _blob(checkpoint.cosign(note, WITNESS, witness_key, TIME))
    moved = blob[:4] + (TIME + delta).to_bytes(8, "big") + blob[12:]
    with pytest.raises(IntegrityError, match="invalid"):
        checkpoint.verify_cosignature(
            _with_line(note, f"{DASH} {WITNESS} {_b64(moved)}"), WITNESS, witness_key.public_key()
        )


def test_timestamp_beyond_two_to_the_63_is_refused_even_if_signed(
    note: str, witness_key: Ed25519PrivateKey
) -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    line = _independent_cosignature(body, WITNESS, witness_key, 2**63)
    with pytest.raises(IntegrityError, match="impossible timestamp"):
        checkpoint.verify_cosignature(_with_line(note, line), WITNESS, witness_key.public_key())


def test_log_signature_is_not_a_cosignature_and_vice_versa(
    note: str, log_key: Ed25519PrivateKey
) -> None:
    # Same key, same name, both kinds of signature: the type byte and the
    # "cosignature/v1" header keep each from being replayed as the other.
    cosigned = _cosigned(note, log_key, name=ORIGIN)
    with pytest.raises(IntegrityError, match="no cosignature"):
        checkpoint.verify_cosignature(note, ORIGIN, log_key.public_key())
    assert checkpoint.verify_cosignature(cosigned, ORIGIN, log_key.public_key()) == TIME
    only_cosignature = cosigned.replace(note.split("\n\n")[1], "")
    with pytest.raises(IntegrityError, match="no signature"):
        checkpoint.verify(only_cosignature, ORIGIN, log_key.public_key())


def test_cosignature_with_a_truncated_blob(note: str, witness_key: Ed25519PrivateKey) -> None:
    blob = _blob(checkpoint.cosign(note, WITNESS, witness_key, TIME))
    short = f"{DASH} {WITNESS} {_b64(blob[:-1])}"
    with pytest.raises(IntegrityError, match="wrong length"):
        checkpoint.verify_cosignature(_with_line(note, short), WITNESS, witness_key.public_key())


def test_a_bad_first_cosignature_rejects_the_note(
    note: str, witness_key: Ed25519PrivateKey
) -> None:
    # signed-note: a known key whose signature fails SHOULD reject the note.
    good = checkpoint.cosign(note, WITNESS, witness_key, TIME)
    blob = _blob(good)
    bad = f"{DASH} {WITNESS} {_b64(blob[:12] + bytes(64))}"
    with pytest.raises(IntegrityError, match="invalid"):
        checkpoint.verify_cosignature(
            _with_line(_with_line(note, bad), good), WITNESS, witness_key.public_key()
        )
    # Go's note.Open reads only the first signature by a key; so do we.
    doubled = _with_line(_with_line(note, good), bad)
    assert checkpoint.verify_cosignature(doubled, WITNESS, witness_key.public_key()) == TIME


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda n: n.replace("\n\n", "\n"), id="no-blank-line"),
        pytest.param(lambda n: n.rstrip("\n"), id="no-final-newline"),
        pytest.param(lambda n: n + "not a signature\n", id="junk-line"),
        pytest.param(lambda n: n + f"{DASH} {WITNESS} !!!\n", id="bad-base64"),
        pytest.param(lambda n: n + f"{DASH} {WITNESS} AAAAAAA\u00e9\n", id="non-ascii-base64"),
        pytest.param(lambda n: n + f"{DASH} {WITNESS} AAAA\n", id="blob-too-short"),
        pytest.param(lambda n: n + f"{DASH} bad+name AAAAAAAA\n", id="plus-in-name"),
        pytest.param(lambda n: n.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda n: n.replace(ORIGIN, ORIGIN + "\x00", 1), id="nul"),
        pytest.param(lambda n: n + "\n", id="trailing-blank-line"),
    ],
)
def test_malformed_note_is_refused(
    note: str, witness_key: Ed25519PrivateKey, damage: Callable[[str], str]
) -> None:
    cosigned = _cosigned(note, witness_key)
    with pytest.raises(IntegrityError):
        checkpoint.verify_cosignature(damage(cosigned), WITNESS, witness_key.public_key())


def test_sixteen_cosignatures_are_accepted_and_too_many_refused(
    note: str, witness_key: Ed25519PrivateKey
) -> None:
    # signed-note: verifiers MUST accept at least 16 signatures.
    crowded = note
    for number in range(15):
        crowded = _cosigned(crowded, Ed25519PrivateKey.generate(), name=f"w{number}.test")
    crowded = _cosigned(crowded, witness_key)
    assert crowded.count(DASH) == 17
    assert checkpoint.verify_cosignature(crowded, WITNESS, witness_key.public_key()) == TIME

    spam = note + "".join(f"{DASH} spam{i}.test AAAAAAAA\n" for i in range(100))
    with pytest.raises(IntegrityError, match="more than 100"):
        checkpoint.verify_cosignature(spam, WITNESS, witness_key.public_key())


# Signing inputs ------------------------------------------------------------------


@pytest.mark.parametrize("timestamp", [-1, 2**63, True])
def test_cosign_refuses_timestamps_outside_the_spec(
    note: str, witness_key: Ed25519PrivateKey, timestamp: int
) -> None:
    with pytest.raises(InvalidInput):
        checkpoint.cosign(note, WITNESS, witness_key, timestamp)


def test_cosign_accepts_the_edges_of_the_timestamp_range(
    note: str, witness_key: Ed25519PrivateKey
) -> None:
    for timestamp in (0, 2**63 - 1):
        cosigned = _cosigned(note, witness_key, timestamp)
        assert checkpoint.verify_cosignature(cosigned, WITNESS, witness_key.public_key()) == (
            timestamp
        )


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\there"])
def test_cosign_refuses_names_a_note_cannot_carry(
    note: str, witness_key: Ed25519PrivateKey, name: str
) -> None:
    with pytest.raises(InvalidInput):
        checkpoint.cosign(note, name, witness_key, TIME)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(Checkpoint(ORIGIN, 42, ROOT).body(), id="unsigned-body"),
        pytest.param(f"{ORIGIN}\n42\n\n{DASH} {ORIGIN} AAAAAAAA\n", id="not-a-checkpoint"),
        pytest.param("", id="empty"),
    ],
)
def test_cosign_refuses_what_is_not_a_signed_checkpoint(
    witness_key: Ed25519PrivateKey, text: str
) -> None:
    with pytest.raises(InvalidInput):
        checkpoint.cosign(text, WITNESS, witness_key, TIME)


# add_signature ---------------------------------------------------------------------


def test_witnesses_are_appended_in_the_order_they_answer(
    note: str, log_key: Ed25519PrivateKey
) -> None:
    keys = {f"w{i}.test": Ed25519PrivateKey.generate() for i in range(3)}
    cosigned = note
    for name, key in keys.items():
        cosigned = _cosigned(cosigned, key, name=name)
    names = [line.split(" ")[1] for line in cosigned.split("\n\n")[1].splitlines()]
    assert names == [ORIGIN, *keys]
    for name, key in keys.items():
        assert checkpoint.verify_cosignature(cosigned, name, key.public_key()) == TIME
    assert checkpoint.verify(cosigned, ORIGIN, log_key.public_key()).size == 42


def test_newer_cosignature_by_the_same_witness_replaces_the_older(
    note: str, witness_key: Ed25519PrivateKey
) -> None:
    # Two signatures by one key would leave verifiers to pick one, and Go's
    # note.Open reads only the first: the stale one would win there.
    older = _cosigned(note, witness_key, TIME)
    newer = _cosigned(older, witness_key, TIME + 60)
    assert newer.count(f"{DASH} {WITNESS} ") == 1
    assert checkpoint.verify_cosignature(newer, WITNESS, witness_key.public_key()) == TIME + 60
    assert _cosigned(newer, witness_key, TIME + 60) == newer


def test_same_name_with_another_key_is_kept(note: str) -> None:
    # Key rotation: the (name, key id) pair identifies a key, not the name.
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    both = _cosigned(_cosigned(note, old_key), new_key, TIME + 1)
    assert checkpoint.verify_cosignature(both, WITNESS, old_key.public_key()) == TIME
    assert checkpoint.verify_cosignature(both, WITNESS, new_key.public_key()) == TIME + 1


def test_other_signature_lines_are_kept_byte_for_byte() -> None:
    name, _, _, public_key = _vkey(FOREIGN_WITNESS_VKEY)
    extended = _cosigned(FOREIGN_NOTE, Ed25519PrivateKey.generate())
    assert extended.startswith(FOREIGN_NOTE)
    assert checkpoint.verify_cosignature(extended, name, public_key) == 1_779_573_024


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("", id="empty"),
        pytest.param(f"- {WITNESS} AAAAAAAA", id="ascii-dash"),
        pytest.param(f"{DASH} {WITNESS}", id="no-signature"),
        pytest.param(f"{DASH} {WITNESS} not base64!", id="bad-base64"),
        pytest.param(f"{DASH} {WITNESS} AAAA", id="no-signature-bytes"),
        pytest.param(f"{DASH} has+plus AAAAAAAA", id="plus-in-name"),
        pytest.param(f"{DASH} {WITNESS} AAAAAAAA\n{DASH} {WITNESS} AAAAAAAA", id="two-lines"),
        pytest.param(f"{DASH} {WITNESS} AAAAAAAA\n\n", id="blank-line-after"),
    ],
)
def test_add_signature_refuses_malformed_lines(note: str, line: str) -> None:
    with pytest.raises(InvalidInput):
        checkpoint.add_signature(note, line)


def test_add_signature_refuses_an_unsigned_note(witness_key: Ed25519PrivateKey) -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    line = _independent_cosignature(body, WITNESS, witness_key, TIME)
    with pytest.raises(InvalidInput):
        checkpoint.add_signature(body, line)


def test_note_text_ends_at_the_last_blank_line() -> None:
    # signed-note: the text MAY contain empty lines; the signatures start
    # after the last one.
    text, signatures = checkpoint.split_note(f"a\n\nb\n\n{DASH} k AAAAAAAA\n")
    assert text == "a\n\nb\n"
    assert [(s.name, s.blob) for s in signatures] == [("k", bytes(6))]
