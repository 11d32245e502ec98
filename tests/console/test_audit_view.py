"""The audit page's pure parts: filter links, checkpoint age, witness status, rows, the key."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import checkpoint
from gateway.audit.log import StoredEntry
from gateway.audit.merkle import leaf_hash
from gateway.console.audit_view import AuditFilters, LogKey, age_text, row_of, witness_statuses


def test_a_filter_link_keeps_every_filter_and_an_offset_survives_the_url() -> None:
    berlin = timezone(timedelta(hours=2))
    filters = AuditFilters(
        subject="a b&c",
        event="grant.deny",
        tier=2,
        since=datetime(2026, 3, 2, 10, 30, tzinfo=berlin),
    )
    link = filters.link(after=41)
    # "+" would arrive as a space; the link writes it %2B, and the time in UTC.
    assert "%2B00%3A00" in link
    assert dict(parse_qsl(link)) == {
        "subject": "a b&c",
        "event": "grant.deny",
        "tier": "2",
        "since": "2026-03-02T08:30:00+00:00",
        "after": "41",
    }
    assert AuditFilters().link() == ""
    assert not AuditFilters().any and filters.any


def test_the_time_inputs_show_utc_to_the_minute_or_the_second() -> None:
    filters = AuditFilters(
        since=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        until=datetime(2026, 3, 2, 12, 0, 7, tzinfo=timezone(timedelta(hours=1))),
    )
    assert filters.local_input("since") == "2026-03-02T09:00"
    assert filters.local_input("until") == "2026-03-02T11:00:07"
    assert AuditFilters().local_input("since") == ""


def test_country_is_asked_for_upper_case_as_the_api_asks() -> None:
    assert AuditFilters(country="de").query_arguments()["country"] == "DE"


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        (timedelta(0), "0 s"),
        (timedelta(seconds=-5), "0 s"),
        (timedelta(seconds=59), "59 s"),
        (timedelta(minutes=3, seconds=5), "3 min 5 s"),
        (timedelta(minutes=3), "3 min"),
        (timedelta(hours=2, seconds=9), "2 h"),
        (timedelta(days=3, hours=4, minutes=1), "3 d 4 h"),
    ],
)
def test_checkpoint_age_is_two_units_at_most(age: timedelta, shown: str) -> None:
    assert age_text(age) == shown


def test_a_witness_is_cosigned_only_if_its_own_key_verifies_its_line() -> None:
    log_key, honest, impostor = (Ed25519PrivateKey.generate() for _ in range(3))
    note = checkpoint.sign(
        checkpoint.Checkpoint("log.example", 3, bytes(32)), "log.example", log_key
    )
    # "mirror" signs under its name with a key the gateway does not know for it.
    note = checkpoint.add_signature(note, checkpoint.cosign(note, "witness", honest, 1_700_000_000))
    note = checkpoint.add_signature(
        note, checkpoint.cosign(note, "mirror", impostor, 1_700_000_000)
    )
    statuses = witness_statuses(
        note,
        {
            "witness": honest.public_key(),
            "mirror": Ed25519PrivateKey.generate().public_key(),
            "absent": Ed25519PrivateKey.generate().public_key(),
        },
    )
    assert [(s.name, s.cosigned, s.cosigned_at) for s in statuses] == [
        ("absent", False, None),
        ("mirror", False, None),
        ("witness", True, 1_700_000_000),
    ]


def test_a_row_reads_the_columns_the_filters_use_and_survives_an_unreadable_entry() -> None:
    entry = (
        b'{"actor":{"country":"DE","org":"rhein","subject":"anna"},"decision":{"effect":"deny",'
        b'"reasons":[{"code":"A"},{"code":"B"}],"tier":3},"event":"grant.deny","index":7,'
        b'"model":"acme/m","time":"2026-03-02T10:00:00+01:00"}'
    )
    row = row_of(StoredEntry(7, entry, leaf_hash(entry)))
    assert (row.subject, row.org, row.country, row.tier, row.decision, row.reasons) == (
        "anna",
        "rhein",
        "DE",
        "3",
        "deny",
        "A B",
    )
    assert row.time == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    broken = row_of(StoredEntry(8, b"{not json", leaf_hash(b"{not json")))
    assert broken.event == "(unreadable entry)" and broken.time is None


def test_the_log_key_is_shown_as_audit_public_key_prints_it() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes_raw()
    shown = LogKey.of(key)
    assert base64.b64decode(shown.base64) == raw
    assert shown.fingerprint == "SHA256:" + hashlib.sha256(raw).hexdigest()
