"""c2sp.org/tlog-proof@v1 receipts: the offline evidence that one event is in the signed log.

Layout known answers come from transparency-dev/formats ``proof/tlog_proof_test.go``
(``TestMarshal``: the same hashes, index and extra data give the same lines) and
from the example in the spec itself (C2SP ``tlog-proof.md``). Both use a
placeholder where the checkpoint goes; a real signed note stands in for it here.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import checkpoint, proofs, receipt
from gateway.audit.checkpoint import Checkpoint
from gateway.audit.merkle import leaf_hash, node_hash
from gateway.audit.receipt import Receipt
from gateway.errors import IntegrityError, InvalidInput

DASH = "\u2014"
ORIGIN = "weightgate.test/audit"
HEADER = "c2sp.org/tlog-proof@v1"
H1 = hashlib.sha256(b"hash1").digest()
H2 = hashlib.sha256(b"hash2").digest()
LOG_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"receipt test log").digest())
WITNESS_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"receipt witness").digest())
NOTE = checkpoint.sign(Checkpoint(ORIGIN, 5, hashlib.sha256(b"r").digest()), ORIGIN, LOG_KEY)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Log:
    """A small log with every perfect node stored, a signed and cosigned checkpoint."""

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = entries
        self.store: dict[tuple[int, int], bytes] = {
            (0, i): leaf_hash(e) for i, e in enumerate(entries)
        }
        level = 0
        while 1 << (level + 1) <= len(entries):
            for i in range(len(entries) >> (level + 1)):
                left, right = self.store[level, 2 * i], self.store[level, 2 * i + 1]
                self.store[level + 1, i] = node_hash(left, right)
            level += 1
        root = proofs.root_from_nodes(self.store.__getitem__, len(entries))
        signed = checkpoint.sign(Checkpoint(ORIGIN, len(entries), root), ORIGIN, LOG_KEY)
        line = checkpoint.cosign(signed, "witness.test/w1", WITNESS_KEY, 1_767_225_600)
        self.note = checkpoint.add_signature(signed, line)

    def receipt(self, index: int, extra: bytes | None = None) -> str:
        proof = proofs.inclusion_proof(self.store.__getitem__, index, len(self.entries))
        return receipt.format_receipt(index, proof, self.note, extra)


LOG = Log([f"event {i}".encode() for i in range(11)])


# Layout -------------------------------------------------------------------------


def test_layout_matches_the_go_reference_without_extra_data() -> None:
    assert receipt.format_receipt(5, [H1, H2], NOTE) == (
        f"{HEADER}\nindex 5\n{_b64(H1)}\n{_b64(H2)}\n\n{NOTE}"
    )


def test_layout_matches_the_go_reference_with_extra_data() -> None:
    # The extra line comes *before* the index line (tlog-proof: "The second
    # line MAY start with the string extra").
    assert receipt.format_receipt(10, [H1], NOTE, b"extra information") == (
        f"{HEADER}\nextra {_b64(b'extra information')}\nindex 10\n{_b64(H1)}\n\n{NOTE}"
    )


def test_layout_matches_the_go_reference_with_no_hashes() -> None:
    assert receipt.format_receipt(0, [], NOTE) == f"{HEADER}\nindex 0\n\n{NOTE}"


def test_the_spec_example_reads_as_the_spec_says() -> None:
    head = (
        "c2sp.org/tlog-proof@v1\n"
        "extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
        "index 73894\n"
        "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
        "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
        "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
        "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
        "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
        "\n"
    )
    parsed = receipt.parse_receipt(head + NOTE)
    assert parsed.index == 73894
    assert parsed.extra is not None
    assert parsed.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert [_b64(h) for h in parsed.proof] == head.split("\n")[3:8]
    assert parsed.checkpoint_note == NOTE
    assert receipt.format_receipt(parsed.index, parsed.proof, NOTE, parsed.extra) == head + NOTE


# Round trips and verification ------------------------------------------------------


@settings(max_examples=200, deadline=None, database=None)
@given(
    index=st.integers(min_value=0, max_value=2**64 - 1),
    proof=st.lists(st.binary(min_size=32, max_size=32), max_size=64),
    extra=st.none() | st.binary(max_size=300),
)
def test_round_trip(index: int, proof: list[bytes], extra: bytes | None) -> None:
    text = receipt.format_receipt(index, proof, LOG.note, extra)
    assert receipt.parse_receipt(text) == Receipt(index, tuple(proof), LOG.note, extra)


def test_empty_extra_data_survives_the_round_trip() -> None:
    text = receipt.format_receipt(3, [H1], NOTE, b"")
    assert text.split("\n")[1] == "extra "
    assert receipt.parse_receipt(text).extra == b""


@pytest.mark.parametrize("index", range(11))
def test_every_entry_of_a_log_gets_a_receipt_that_verifies_offline(index: int) -> None:
    parsed = receipt.parse_receipt(LOG.receipt(index, extra=b"grant-id"))
    signed = receipt.verify_receipt(
        parsed, leaf_hash(LOG.entries[index]), ORIGIN, LOG_KEY.public_key()
    )
    assert signed.size == 11
    assert (
        checkpoint.verify_cosignature(
            parsed.checkpoint_note, "witness.test/w1", WITNESS_KEY.public_key()
        )
        == 1_767_225_600
    )


def test_receipt_for_another_event_does_not_verify() -> None:
    parsed = receipt.parse_receipt(LOG.receipt(4))
    with pytest.raises(IntegrityError):
        receipt.verify_receipt(parsed, leaf_hash(LOG.entries[5]), ORIGIN, LOG_KEY.public_key())
    with pytest.raises(IntegrityError):
        receipt.verify_receipt(parsed, leaf_hash(b"forged event"), ORIGIN, LOG_KEY.public_key())


def test_receipt_with_its_index_moved_does_not_verify() -> None:
    moved = LOG.receipt(4).replace("\nindex 4\n", "\nindex 5\n")
    with pytest.raises(IntegrityError):
        receipt.verify_receipt(
            receipt.parse_receipt(moved), leaf_hash(LOG.entries[4]), ORIGIN, LOG_KEY.public_key()
        )


def test_receipt_with_a_doctored_proof_does_not_verify() -> None:
    parsed = receipt.parse_receipt(LOG.receipt(4))
    doctored = Receipt(
        parsed.index, (hashlib.sha256(b"x").digest(), *parsed.proof[1:]), parsed.checkpoint_note
    )
    with pytest.raises(IntegrityError):
        receipt.verify_receipt(doctored, leaf_hash(LOG.entries[4]), ORIGIN, LOG_KEY.public_key())


def test_receipt_under_a_checkpoint_the_log_never_signed() -> None:
    # Same tree, re-signed by someone else: an inclusion proof is only as good
    # as the signature on the root it ends at.
    impostor = Ed25519PrivateKey.generate()
    root = proofs.root_from_nodes(LOG.store.__getitem__, 11)
    forged_note = checkpoint.sign(Checkpoint(ORIGIN, 11, root), ORIGIN, impostor)
    proof = proofs.inclusion_proof(LOG.store.__getitem__, 4, 11)
    parsed = receipt.parse_receipt(receipt.format_receipt(4, proof, forged_note))
    with pytest.raises(IntegrityError, match="no signature"):
        receipt.verify_receipt(parsed, leaf_hash(LOG.entries[4]), ORIGIN, LOG_KEY.public_key())


def test_receipt_from_another_log_under_the_same_key_is_refused() -> None:
    root = proofs.root_from_nodes(LOG.store.__getitem__, 11)
    other = checkpoint.sign(Checkpoint("other.test/log", 11, root), ORIGIN, LOG_KEY)
    proof = proofs.inclusion_proof(LOG.store.__getitem__, 4, 11)
    parsed = receipt.parse_receipt(receipt.format_receipt(4, proof, other))
    with pytest.raises(IntegrityError, match="another log"):
        receipt.verify_receipt(parsed, leaf_hash(LOG.entries[4]), ORIGIN, LOG_KEY.public_key())


# Malformed receipts ------------------------------------------------------------------

GOOD = LOG.receipt(4, extra=b"x")
GOOD_LINES = GOOD.split("\n")
HASH_LINE = GOOD_LINES[3]
DEEPEST = receipt.format_receipt(0, [H1] * 64, NOTE)


def _with_line(number: int, value: str) -> str:
    lines = list(GOOD_LINES)
    lines[number] = value
    return "\n".join(lines)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(HEADER, id="header-only"),
        pytest.param(f"{HEADER}\n", id="header-line-only"),
        pytest.param(GOOD.replace(HEADER, "c2sp.org/tlog-proof@v2"), id="other-version"),
        pytest.param(GOOD.replace(HEADER, HEADER + " "), id="header-trailing-space"),
        pytest.param("\n" + GOOD, id="leading-blank-line"),
        pytest.param(_with_line(1, "extra !!!"), id="extra-not-base64"),
        pytest.param(_with_line(1, "extra eA"), id="extra-unpadded"),
        pytest.param(_with_line(1, "extra eB=="), id="extra-non-canonical"),
        pytest.param(_with_line(1, "extra\teA=="), id="extra-tab"),
        pytest.param(
            GOOD.replace("extra eA==\nindex 4\n", "index 4\nextra eA==\n"), id="extra-after-index"
        ),
        pytest.param(_with_line(2, "index"), id="index-missing"),
        pytest.param(_with_line(2, "index 04"), id="index-leading-zero"),
        pytest.param(_with_line(2, "index +4"), id="index-plus"),
        pytest.param(_with_line(2, "index -4"), id="index-negative"),
        pytest.param(_with_line(2, "index 4 "), id="index-trailing-space"),
        pytest.param(_with_line(2, "index  4"), id="index-two-spaces"),
        pytest.param(_with_line(2, "index 4_0"), id="index-underscore"),
        pytest.param(_with_line(2, "index \u0664"), id="index-arabic-indic-digit"),
        pytest.param(_with_line(2, f"index {2**64}"), id="index-beyond-uint64"),
        pytest.param(_with_line(2, "Index 4"), id="index-capitalised"),
        pytest.param(_with_line(3, HASH_LINE[:-4]), id="hash-31-bytes"),
        pytest.param(_with_line(3, _b64(bytes(33))), id="hash-33-bytes"),
        pytest.param(_with_line(3, HASH_LINE.rstrip("=")), id="hash-unpadded"),
        pytest.param(_with_line(3, HASH_LINE.replace("=", "A")), id="hash-no-padding-char"),
        pytest.param(_with_line(3, HASH_LINE[:42] + "B="), id="hash-non-canonical"),
        pytest.param(_with_line(3, HASH_LINE.encode().hex()), id="hash-hex"),
        pytest.param(_with_line(3, HASH_LINE + "\u00e9"), id="hash-non-ascii"),
        pytest.param(_with_line(3, " " + HASH_LINE), id="hash-leading-space"),
        pytest.param(GOOD.replace("\n\n", "\n", 1), id="no-blank-line-before-checkpoint"),
        pytest.param(GOOD.split("\n\n", 1)[0] + "\n\n", id="no-checkpoint"),
        pytest.param(GOOD.split("\n\n", 1)[0] + "\n\n\n" + NOTE, id="two-blank-lines"),
        pytest.param(GOOD.rsplit("\n\n", 1)[0] + "\n", id="checkpoint-unsigned"),
        pytest.param(GOOD.rstrip("\n"), id="no-final-newline"),
        pytest.param(GOOD.replace("\n", "\r\n"), id="crlf"),
        pytest.param(GOOD + "trailing junk\n", id="junk-after-signatures"),
        pytest.param(
            DEEPEST.replace(f"\n{_b64(H1)}\n", f"\n{_b64(H1)}\n{_b64(H1)}\n", 1), id="65-hashes"
        ),
    ],
)
def test_malformed_receipt_is_refused(text: str) -> None:
    with pytest.raises(IntegrityError):
        receipt.parse_receipt(text)


def test_the_malformed_cases_start_from_a_good_receipt() -> None:
    # Controls for the table above: the unedited receipt parses, and 64
    # hashes (the deepest tree a uint64 index allows) are still accepted.
    assert receipt.parse_receipt(GOOD).index == 4
    assert len(receipt.parse_receipt(DEEPEST).proof) == 64


@pytest.mark.parametrize(
    ("index", "proof", "note"),
    [
        pytest.param(-1, [], NOTE, id="negative-index"),
        pytest.param(2**64, [], NOTE, id="index-beyond-uint64"),
        pytest.param(True, [], NOTE, id="bool-index"),
        pytest.param(0, [H1[:31]], NOTE, id="short-hash"),
        pytest.param(0, [H1 + b"!"], NOTE, id="long-hash"),
        pytest.param(0, [H1] * 65, NOTE, id="65-hashes"),
        pytest.param(0, [], Checkpoint(ORIGIN, 5, H1).body(), id="unsigned-note"),
        pytest.param(0, [], "\n" + NOTE, id="note-with-leading-blank-line"),
        pytest.param(0, [], NOTE.rstrip("\n"), id="note-without-final-newline"),
    ],
)
def test_format_refuses_what_could_not_be_parsed_back(
    index: int, proof: list[bytes], note: str
) -> None:
    with pytest.raises(InvalidInput):
        receipt.format_receipt(index, proof, note)
