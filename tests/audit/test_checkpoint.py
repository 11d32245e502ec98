"""Signed checkpoints: C2SP tlog-checkpoint text, its Ed25519 signed-note signature, forgeries.

Known answers live in ``tests/vectors/checkpoint-ed25519-kat.json`` with their
provenance; each is also rebuilt here from first principles (hashlib for the key
id, a hand-formatted note) so a bug shared by signer and verifier cannot hide.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import checkpoint
from gateway.audit.checkpoint import Checkpoint
from gateway.errors import IntegrityError

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "checkpoint-ed25519-kat.json"
KAT: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
DASH = "\u2014"
NAME = "weightgate.test/audit"
ROOT = hashlib.sha256(b"some root").digest()


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _independent_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\x0a" + b"\x01" + _raw(public_key)).digest()[:4]


def _signed_note(body: str, name: str, key: Ed25519PrivateKey) -> str:
    """Any text, correctly signed: lets a test show the parser, not the signature, refuses it."""
    blob = _independent_key_id(name, key.public_key()) + key.sign(body.encode())
    return f"{body}\n{DASH} {name} {base64.b64encode(blob).decode()}\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _vkey_public(vkey: str) -> tuple[str, bytes, Ed25519PublicKey]:
    """Parse a Go note verifier key ``name+hexid+base64(0x01 || key)``."""
    name, key_hex, encoded = vkey.split("+", 2)
    typed = base64.b64decode(encoded)
    assert typed[0] == 0x01  # Ed25519
    return name, bytes.fromhex(key_hex), Ed25519PublicKey.from_public_bytes(typed[1:])


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


# Round trip and layout -------------------------------------------------------

origins = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="+"),
    min_size=1,
    max_size=60,
)


@settings(max_examples=50, deadline=None, database=None)
@given(
    origin=origins,
    size=st.integers(min_value=0, max_value=2**64),
    root=st.binary(min_size=32, max_size=32),
)
def test_signed_checkpoint_verifies_to_what_was_signed(origin: str, size: int, root: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(origin.encode()).digest())
    signed = Checkpoint(origin, size, root)
    assert (
        checkpoint.verify(checkpoint.sign(signed, origin, key), origin, key.public_key()) == signed
    )


def test_note_layout_is_exactly_the_c2sp_format(key: Ed25519PrivateKey) -> None:
    note = checkpoint.sign(Checkpoint(NAME, 42, ROOT), NAME, key)

    assert note.endswith("\n")
    lines = note.split("\n")
    assert lines[:4] == [NAME, "42", _b64(ROOT), ""]
    assert lines[5:] == [""]
    signature_line = lines[4]
    assert signature_line.startswith(f"\u2014 {NAME} ")
    blob = base64.b64decode(signature_line.removeprefix(f"\u2014 {NAME} "), validate=True)
    assert len(blob) == 4 + 64
    assert blob[:4] == _independent_key_id(NAME, key.public_key())
    # The signed bytes are the body up to and including its final newline,
    # without the blank separator line.
    key.public_key().verify(blob[4:], f"{NAME}\n42\n{_b64(ROOT)}\n".encode())


def test_empty_tree_checkpoint_says_zero() -> None:
    assert Checkpoint(NAME, 0, hashlib.sha256(b"").digest()).body() == (
        f"{NAME}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    )


def test_key_id_is_truncated_sha256_of_name_newline_type_and_key(key: Ed25519PrivateKey) -> None:
    expected = hashlib.sha256(NAME.encode() + b"\n\x01" + _raw(key.public_key())).digest()[:4]
    assert checkpoint.key_id(NAME, key.public_key()) == expected
    assert checkpoint.key_id(NAME + "x", key.public_key()) != expected


# Known answers -----------------------------------------------------------------


def test_key_id_matches_go_sumdb_note_known_answer() -> None:
    go = KAT["go_sumdb_note"]
    name, key_hex_id, public_key = _vkey_public(go["verifier_key"])
    assert checkpoint.key_id(name, public_key) == key_hex_id == bytes.fromhex("c74f20a3")

    # The signer key's seed yields the same public key and, over Go's text, Go's line.
    # PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>; the base64 may itself hold "+".
    seed = base64.b64decode(go["signer_key"].split("+", 4)[4])[1:]
    signer = Ed25519PrivateKey.from_private_bytes(seed)
    assert _raw(signer.public_key()) == _raw(public_key)
    blob = checkpoint.key_id(name, public_key) + signer.sign(go["text"].encode())
    assert f"{DASH} {name} {_b64(blob)}" == go["signature_line"]


def test_checkpoint_signed_by_another_implementation_verifies() -> None:
    foreign = KAT["foreign_checkpoint"]
    name, key_hex_id, public_key = _vkey_public(foreign["verifier_key"])
    assert checkpoint.key_id(name, public_key) == key_hex_id
    parsed = checkpoint.verify(foreign["note"], name, public_key)
    assert parsed.origin == name
    assert parsed.size == 5
    assert parsed.root == base64.b64decode("69g3xKIMdnmOtVtcF398Q1gxWGvEpQdyfvZm9GRAlqY=")


def test_kat_seed_is_the_rfc8032_test_1_key() -> None:
    ours = KAT["weightgate"]
    signer = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(ours["seed_hex"]))
    assert _raw(signer.public_key()).hex() == ours["rfc8032_public_key_hex"]
    assert signer.sign(b"").hex() == ours["rfc8032_empty_message_signature_hex"]


@pytest.mark.parametrize(
    "case", KAT["weightgate"]["checkpoints"], ids=lambda c: f"size-{c['size']}"
)
def test_signed_note_text_is_fixed_for_a_fixed_key(case: dict[str, Any]) -> None:
    ours = KAT["weightgate"]
    signer = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(ours["seed_hex"]))
    root = bytes.fromhex(case["root_hex"])
    body = f"{case['origin']}\n{case['size']}\n{_b64(root)}\n"

    assert checkpoint.key_id(ours["name"], signer.public_key()).hex() == ours["key_id_hex"]
    assert _signed_note(body, ours["name"], signer) == case["note"]
    signed = checkpoint.sign(Checkpoint(case["origin"], case["size"], root), ours["name"], signer)
    assert signed == case["note"]
    assert checkpoint.verify(case["note"], ours["name"], signer.public_key()) == Checkpoint(
        case["origin"], case["size"], root
    )


# Forgeries ---------------------------------------------------------------------


def _edit_line(note: str, line: int, value: str) -> str:
    lines = note.split("\n")
    lines[line] = value
    return "\n".join(lines)


def test_rollback_to_a_smaller_size_under_the_old_signature_fails(key: Ed25519PrivateKey) -> None:
    note = checkpoint.sign(Checkpoint(NAME, 42, ROOT), NAME, key)
    with pytest.raises(IntegrityError):
        checkpoint.verify(_edit_line(note, 1, "41"), NAME, key.public_key())
    with pytest.raises(IntegrityError):
        checkpoint.verify(_edit_line(note, 1, "43"), NAME, key.public_key())


def test_forked_root_under_the_old_signature_fails(key: Ed25519PrivateKey) -> None:
    note = checkpoint.sign(Checkpoint(NAME, 42, ROOT), NAME, key)
    forked = _b64(hashlib.sha256(b"another history").digest())
    with pytest.raises(IntegrityError):
        checkpoint.verify(_edit_line(note, 2, forked), NAME, key.public_key())


def test_origin_swapped_under_the_old_signature_fails(key: Ed25519PrivateKey) -> None:
    note = checkpoint.sign(Checkpoint(NAME, 42, ROOT), NAME, key)
    with pytest.raises(IntegrityError):
        checkpoint.verify(_edit_line(note, 0, "other.example/log"), NAME, key.public_key())


def test_checkpoint_re_signed_with_another_key(key: Ed25519PrivateKey) -> None:
    impostor = Ed25519PrivateKey.generate()
    forged = checkpoint.sign(Checkpoint(NAME, 42, ROOT), NAME, impostor)
    with pytest.raises(IntegrityError, match="no signature"):
        checkpoint.verify(forged, NAME, key.public_key())


def test_another_keys_signature_under_our_key_id(key: Ed25519PrivateKey) -> None:
    # The key id is only a hint: claiming ours does not make a signature ours.
    body = Checkpoint(NAME, 42, ROOT).body()
    impostor = Ed25519PrivateKey.generate()
    blob = checkpoint.key_id(NAME, key.public_key()) + impostor.sign(body.encode())
    forged = f"{body}\n{DASH} {NAME} {_b64(blob)}\n"
    with pytest.raises(IntegrityError, match="invalid"):
        checkpoint.verify(forged, NAME, key.public_key())


def test_bad_signature_by_our_key_is_not_excused_by_a_good_one(key: Ed25519PrivateKey) -> None:
    # signed-note: a known key whose signature fails rejects the note.
    good = checkpoint.sign(Checkpoint(NAME, 42, ROOT), NAME, key)
    body, _, good_line = good.partition("\n\n")
    bad_blob = checkpoint.key_id(NAME, key.public_key()) + bytes(64)
    forged = f"{body}\n\n{DASH} {NAME} {_b64(bad_blob)}\n{good_line}"
    with pytest.raises(IntegrityError):
        checkpoint.verify(forged, NAME, key.public_key())


def test_witness_cosignature_is_ignored_not_fatal(key: Ed25519PrivateKey) -> None:
    # Unknown signatures must be ignored: that is what lets a witness cosign.
    witness = Ed25519PrivateKey.generate()
    body = Checkpoint(NAME, 42, ROOT).body()
    ours = checkpoint.sign(Checkpoint(NAME, 42, ROOT), NAME, key).partition("\n\n")[2]
    theirs = _signed_note(body, "witness.example", witness).partition("\n\n")[2]
    cosigned = f"{body}\n{theirs}{ours}"
    assert checkpoint.verify(cosigned, NAME, key.public_key()) == Checkpoint(NAME, 42, ROOT)


def test_signature_for_another_name_does_not_count(key: Ed25519PrivateKey) -> None:
    note = checkpoint.sign(Checkpoint(NAME, 42, ROOT), "someone-else", key)
    with pytest.raises(IntegrityError, match="no signature"):
        checkpoint.verify(note, NAME, key.public_key())


@pytest.mark.parametrize(
    "note",
    [
        pytest.param(f"{NAME}\n42\n{_b64(ROOT)}\n", id="body-only"),
        pytest.param(f"{NAME}\n42\n{_b64(ROOT)}\n\n", id="blank-line-no-signature"),
        pytest.param(f"{NAME}\n42\n{_b64(ROOT)}\n\n{DASH} {NAME}\n", id="empty-signature"),
        pytest.param(f"{NAME}\n42\n{_b64(ROOT)}\n\n{DASH} {NAME} !!!!\n", id="non-base64-sig"),
        pytest.param(f"{NAME}\n42\n{_b64(ROOT)}\n\n- {NAME} AAAA\n", id="ascii-dash"),
        pytest.param("", id="empty"),
    ],
)
def test_stripped_signature_fails(key: Ed25519PrivateKey, note: str) -> None:
    with pytest.raises(IntegrityError):
        checkpoint.verify(note, NAME, key.public_key())


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(f"{NAME}\n42\n{_b64(ROOT)}\nextension\n", id="extra-line"),
        pytest.param(f"{NAME}\n42\n", id="root-missing"),
        pytest.param(f"{NAME}\nforty-two\n{_b64(ROOT)}\n", id="non-numeric-size"),
        pytest.param(f"{NAME}\n010\n{_b64(ROOT)}\n", id="leading-zero-size"),
        pytest.param(f"{NAME}\n-1\n{_b64(ROOT)}\n", id="negative-size"),
        pytest.param(f"{NAME}\n+42\n{_b64(ROOT)}\n", id="plus-sign-size"),
        pytest.param(f"{NAME}\n 42\n{_b64(ROOT)}\n", id="space-before-size"),
        pytest.param(f"{NAME}\n4_2\n{_b64(ROOT)}\n", id="underscore-size"),
        pytest.param(f"{NAME}\n\u0664\u0662\n{_b64(ROOT)}\n", id="arabic-indic-digits"),
        pytest.param(f"{NAME}\n\n{_b64(ROOT)}\n", id="empty-size"),
        pytest.param(f"{NAME}\n42\n{_b64(ROOT[:31])}\n", id="root-31-bytes"),
        pytest.param(f"{NAME}\n42\n{_b64(ROOT + b'!')}\n", id="root-33-bytes"),
        pytest.param(f"{NAME}\n42\n{_b64(ROOT)[:-1]}\n", id="root-bad-padding"),
        pytest.param(f"{NAME}\n42\n{ROOT.hex()}\n", id="root-hex-not-base64"),
    ],
)
def test_malformed_body_is_refused_even_when_validly_signed(
    key: Ed25519PrivateKey, body: str
) -> None:
    note = _signed_note(body, NAME, key)
    with pytest.raises(IntegrityError):
        checkpoint.verify(note, NAME, key.public_key())


def test_well_formed_body_through_the_same_helper_verifies(key: Ed25519PrivateKey) -> None:
    # Control for the test above: the helper itself makes notes that verify.
    note = _signed_note(f"{NAME}\n42\n{_b64(ROOT)}\n", NAME, key)
    assert checkpoint.verify(note, NAME, key.public_key()) == Checkpoint(NAME, 42, ROOT)
