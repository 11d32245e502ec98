"""Tamper drills on the real SQLite log (docs/DESIGN.md invariant 5).

Each test writes 30 entries through the gateway (20 single appends, each
followed by a publication round, so signed checkpoints of sizes 1..20, then
one batch of 10 signed at size 30), tampers with the ``audit_entries`` and
``checkpoints`` tables directly by SQL as an attacker with database access
(but not the signing key) would, and checks that verification reports the first thing wrong,
with the right kind and index.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import checkpoint
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.audit.verify import Problem, verify_log
from gateway.bootstrap import Services
from tests.audit.support import (
    FILLED,
    FILLED_CHECKPOINTS,
    SINGLE_APPENDS,
    decision_event,
    delete_where,
    insert_forged,
    overwrite,
    replace_checkpoint,
    rewrite_entry,
    rewrite_head,
    row,
    rows,
    signed_checkpoint,
    verify,
)


def first_problem(services: Services) -> Problem:
    report = verify(services)
    assert not report.ok
    return report.problems[0]


def test_untouched_log_verifies(filled: Services) -> None:
    report = verify(filled)
    assert report.ok, report.problems
    assert report.size == FILLED
    assert report.checkpoints == FILLED_CHECKPOINTS
    assert report.unsigned == 0
    assert [r.idx for r in rows(filled)] == list(range(FILLED))


def test_catalog_log_verifies_and_a_reclassified_model_is_caught(
    catalog_ready: Services,
) -> None:
    # The catalog's own entries (three org.add, one model.publish) verify as
    # written; rewriting the published ECCN to the uncontrolled class is caught.
    # Appends sign nothing: until a publication round they are all unsigned.
    assert verify(catalog_ready).unsigned == 4
    published = catalog_ready.publisher.publish()
    assert published is not None and published.size == 4
    report = verify(catalog_ready)
    assert report.ok, report.problems
    assert report.size == 4
    assert (report.checkpoints, report.unsigned) == (1, 0)
    publish = row(catalog_ready, 3)
    assert publish.data()["event"] == "model.publish"
    assert b'"eccn":"4E091"' in publish.entry
    overwrite(
        catalog_ready,
        3,
        publish.entry.replace(b'"eccn":"4E091"', b'"eccn":"EAR99"'),
        publish.leaf_hash,
    )
    problem = first_problem(catalog_ready)
    assert (problem.kind, problem.index) == ("modified", 3)


def test_denial_rewritten_as_allow(filled: Services) -> None:
    original = row(filled, 7)
    forged = original.entry.replace(b'"effect":"deny"', b'"effect":"allow"')
    assert forged != original.entry
    overwrite(filled, 7, forged, original.leaf_hash)
    problem = first_problem(filled)
    assert (problem.kind, problem.index) == ("modified", 7)


def test_leaf_hash_column_rewritten_alone(filled: Services) -> None:
    original = row(filled, 7)
    overwrite(filled, 7, original.entry, bytes(32))
    problem = first_problem(filled)
    assert (problem.kind, problem.index) == ("modified", 7)


@pytest.mark.parametrize("head", ["head kept", "head rewritten"])
def test_denial_rewritten_as_allow_with_leaf_hash_recomputed(filled: Services, head: str) -> None:
    # The forged row is self-consistent, so only the signed checkpoint of size
    # 8 (the first to cover entry 7) can show it; rewriting the tree-state row
    # too does not help the forger, who cannot re-sign.
    rewrite_entry(filled, 7, decision={"effect": "allow", "tier": 3, "reasons": []})
    if head == "head rewritten":
        rewrite_head(filled)
    report = verify(filled)
    assert not report.ok
    first = report.problems[0]
    assert first.kind == "modified"
    assert first.index == 7
    assert "entries 7..7" in first.message
    # Every later checkpoint is off too: sizes 8..20 and 30.
    checkpoint_mismatches = [p for p in report.problems if "checkpoint signed at" in p.message]
    assert len(checkpoint_mismatches) == SINGLE_APPENDS - 7 + 1


def test_entry_in_the_unsigned_middle_of_a_batch_is_caught_by_the_batch_checkpoint(
    filled: Services,
) -> None:
    rewrite_entry(filled, 25, decision={"effect": "allow", "tier": 1, "reasons": []})
    rewrite_head(filled)
    first = first_problem(filled)
    assert first.kind == "modified"
    assert first.index == 20  # the batch of 10 shares one checkpoint
    assert "entries 20..29" in first.message


def test_entry_re_encoded_non_canonically(filled: Services) -> None:
    # Same JSON value, different bytes: two encodings of one entry must not
    # both verify, or the leaf hash no longer names the entry.
    original = row(filled, 7)
    spaced = original.entry.replace(b",", b", ", 1)
    overwrite(filled, 7, spaced, leaf_hash(spaced))
    problem = first_problem(filled)
    assert (problem.kind, problem.index) == ("modified", 7)


def test_entry_replayed_from_another_log(filled: Services) -> None:
    rewrite_entry(filled, 7, origin="other-gateway.example/audit")
    problem = first_problem(filled)
    assert (problem.kind, problem.index) == ("inserted", 7)


@pytest.mark.parametrize("head", ["head kept", "head rewritten"])
def test_audit_row_deleted_in_the_middle(filled: Services, head: str) -> None:
    delete_where(filled, first=12, last=12)
    if head == "head rewritten":
        rewrite_head(filled)
    problem = first_problem(filled)
    assert (problem.kind, problem.index) == ("deleted", 12)


def test_first_audit_row_deleted(filled: Services) -> None:
    delete_where(filled, first=0, last=0)
    problem = first_problem(filled)
    assert (problem.kind, problem.index) == ("deleted", 0)


def test_run_of_audit_rows_deleted_names_the_first(filled: Services) -> None:
    delete_where(filled, first=4, last=9)
    problem = first_problem(filled)
    assert (problem.kind, problem.index) == ("deleted", 4)


@pytest.mark.parametrize("head", ["head kept", "head rewritten"])
def test_newest_entries_deleted_below_a_signed_checkpoint(filled: Services, head: str) -> None:
    # Cutting the tail leaves a log that is internally perfect; only the signed
    # checkpoints of sizes 16..20 and 30 remember that it was longer.
    delete_where(filled, first=15)
    if head == "head rewritten":
        rewrite_head(filled)
    report = verify(filled)
    assert not report.ok
    assert report.size == 15
    assert (report.problems[0].kind, report.problems[0].index) == ("truncated", 15)
    truncations = [p for p in report.problems if p.kind == "truncated"]
    assert len(truncations) >= SINGLE_APPENDS - 15 + 1


def test_whole_log_deleted(filled: Services) -> None:
    delete_where(filled, first=0)
    rewrite_head(filled)
    report = verify(filled)
    assert not report.ok
    assert (report.problems[0].kind, report.problems[0].index) == ("truncated", 0)


def test_two_entries_swapped(filled: Services) -> None:
    low, high = row(filled, 5), row(filled, 9)
    overwrite(filled, 5, high.entry, high.leaf_hash)
    overwrite(filled, 9, low.entry, low.leaf_hash)
    problem = first_problem(filled)
    assert (problem.kind, problem.index) == ("reordered", 5)


def test_two_entries_swapped_and_renumbered(filled: Services) -> None:
    # The careful forger also rewrites each entry's own index and every hash.
    low, high = row(filled, 5), row(filled, 9)
    overwrite(filled, 5, high.entry, high.leaf_hash)
    overwrite(filled, 9, low.entry, low.leaf_hash)
    rewrite_entry(filled, 5, index=5)
    rewrite_entry(filled, 9, index=9)
    rewrite_head(filled)
    first = first_problem(filled)
    assert first.kind == "modified"
    assert first.index == 5
    assert "entries 5..5" in first.message


def test_forged_entry_appended_after_the_last_checkpoint(filled: Services) -> None:
    # A valid-looking grant slipped in at the end. The tree-state row still
    # says 30, so the 31st entry is an insertion and must be reported as one.
    insert_forged(filled, FILLED, decision_event(filled, 999, effect="allow"))
    problem = first_problem(filled)
    assert (problem.kind, problem.index) == ("inserted", FILLED)


def test_forged_entry_appended_with_the_tree_head_rewritten_is_not_vouched_for(
    filled: Services,
) -> None:
    # The same forgery, but the attacker also brings the unsigned tree-state row
    # up to date. No signed checkpoint covers entry 30, and checkpoints are
    # published on an interval, so a live log always has such a tail: the
    # report must not count it as verified by any signature, only as unsigned.
    insert_forged(filled, FILLED, decision_event(filled, 999, effect="allow"))
    rewrite_head(filled)
    report = verify(filled)
    assert report.problems == []
    assert (report.size, report.unsigned) == (FILLED + 1, 1)
    assert report.checkpoints == FILLED_CHECKPOINTS  # none of them reaches entry 30


def test_unsigned_tail_entry_rewritten_after_a_checkpoint_covers_it(filled: Services) -> None:
    # An honest entry waits in the unsigned tail; once a publication round
    # covers it, rewriting it (leaf hash and tree head recomputed) is caught.
    filled.audit.append([decision_event(filled, FILLED)])
    waiting = verify(filled)
    assert waiting.ok, waiting.problems
    assert waiting.unsigned == 1
    published = filled.publisher.publish()
    assert published is not None and published.size == FILLED + 1
    assert verify(filled).unsigned == 0

    rewrite_entry(filled, FILLED, decision={"effect": "allow", "tier": 1, "reasons": []})
    rewrite_head(filled)
    first = first_problem(filled)
    assert (first.kind, first.index) == ("modified", FILLED)
    assert f"entries {FILLED}..{FILLED}" in first.message
    assert first.message.endswith("(in the database)")


def test_checkpoint_re_signed_with_another_key(filled: Services) -> None:
    original = signed_checkpoint(filled, 10)
    impostor = Ed25519PrivateKey.generate()
    replace_checkpoint(
        filled, 10, checkpoint.sign(original, filled.audit.origin, impostor), original.root
    )
    report = verify(filled)
    assert not report.ok
    assert (report.problems[0].kind, report.problems[0].index) == ("bad-signature", None)
    assert report.checkpoints == FILLED_CHECKPOINTS - 1


def test_checkpoint_rewritten_to_cover_a_forged_history(filled: Services) -> None:
    # Forge entry 3, recompute everything, and swap in a checkpoint whose root
    # matches the forgery, signed with the attacker's key under the log's name.
    rewrite_entry(filled, 3, decision={"effect": "allow", "tier": 1, "reasons": []})
    rewrite_head(filled)
    forged_tree = CompactRange()
    for stored in rows(filled)[:4]:
        forged_tree.append(stored.leaf_hash)
    impostor = Ed25519PrivateKey.generate()
    replace_checkpoint(
        filled,
        4,
        checkpoint.sign(
            checkpoint.Checkpoint(filled.audit.origin, 4, forged_tree.root()),
            filled.audit.origin,
            impostor,
        ),
        forged_tree.root(),
    )
    report = verify(filled)
    assert not report.ok
    assert report.problems[0].kind == "bad-signature"
    # The honest checkpoints of sizes 5.. still expose the forged entry.
    assert any(p.kind == "modified" for p in report.problems[1:])


@pytest.mark.parametrize("workers", [1, 2])
def test_entry_checks_in_worker_processes_find_the_same_first_problem(
    filled: Services, workers: int
) -> None:
    rewrite_entry(filled, 12, index=12, decision={"effect": "allow"})
    report = verify_log(
        filled.audit.entries(),
        origin=filled.audit.origin,
        public_key=filled.keys.audit_signer.public_key(),
        checkpoint_notes=filled.audit.checkpoint_notes(),
        state=filled.audit.tree_state(),
        workers=workers,
    )
    assert (report.problems[0].kind, report.problems[0].index) == ("modified", 12)
