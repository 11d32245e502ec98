"""What the console's audit page shows, computed from stored rows and notes. Pure.

The filters travel in links (paging, export) exactly as the reviewer set
them, so the page, the next page and the export always show one view of the
log. Witness status and checkpoint age are facts the server states; the
browser checks the proof itself (``static/verify.js``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import checkpoint
from gateway.audit.checkpoint_store import StoredCheckpoint
from gateway.audit.columns import as_utc, indexed_columns
from gateway.audit.log import StoredEntry
from gateway.errors import IntegrityError


@dataclass(frozen=True)
class AuditFilters:
    """The filters of ``GET /v1/audit/entries``, already validated; paging is apart."""

    subject: str | None = None
    org: str | None = None
    model: str | None = None
    event: str | None = None
    decision: str | None = None
    country: str | None = None
    tier: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``AuditLog.query``: the API's, country upper-cased as there."""
        arguments = asdict(self)
        if self.country:
            arguments["country"] = self.country.upper()
        return arguments

    def link(self, **extra: str | int) -> str:
        """These filters (and ``extra``) as a query string; empty ones left out.

        Instants are written in UTC with their offset, which ``urlencode``
        escapes (``+`` as ``%2B``), so they survive the round trip.
        """
        pairs: list[tuple[str, str]] = []
        for name, value in asdict(self).items():
            if value is None or value == "":
                continue
            text = as_utc(value).isoformat() if isinstance(value, datetime) else str(value)
            pairs.append((name, text))
        pairs += [(name, str(value)) for name, value in extra.items()]
        return urlencode(pairs)

    def local_input(self, name: str) -> str:
        """A time filter as a ``datetime-local`` input shows it: UTC, to the minute or second."""
        value = getattr(self, name)
        if value is None:
            return ""
        utc = as_utc(value)
        return utc.strftime("%Y-%m-%dT%H:%M:%S" if utc.second else "%Y-%m-%dT%H:%M")

    @property
    def any(self) -> bool:
        return any(value is not None for value in asdict(self).values())


@dataclass(frozen=True)
class Row:
    """One table row: the filter columns as the log indexes them, and the reason codes."""

    index: int
    time: datetime | None
    event: str
    subject: str
    org: str
    model: str
    country: str
    tier: str
    decision: str
    reasons: str


def row_of(stored: StoredEntry) -> Row:
    """The columns the filters run on, recomputed from the entry; a row that is not JSON says so."""
    try:
        entry = stored.as_dict()
        columns = indexed_columns(entry)
    except (ValueError, KeyError, TypeError):
        return Row(stored.index, None, "(unreadable entry)", "", "", "", "", "", "", "")
    decision = entry.get("decision")
    reasons = decision.get("reasons") if isinstance(decision, dict) else None
    codes = (
        [str(r.get("code")) for r in reasons if isinstance(r, dict)]
        if isinstance(reasons, list)
        else []
    )
    return Row(
        index=stored.index,
        time=columns["time"],
        event=columns["event"],
        subject=_text(columns["subject"]),
        org=_text(columns["org_id"]),
        model=_text(columns["model_id"]),
        country=_text(columns["country"]),
        tier=_text(columns["tier"]),
        decision=_text(columns["decision"]),
        reasons=" ".join(codes),
    )


def _text(value: object) -> str:
    return "" if value is None else str(value)


def pretty_entry(raw: bytes) -> str:
    """The entry indented for reading; bytes that are not JSON are shown as they are."""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False, sort_keys=True)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class LogKey:
    """The log's public key as ``weightgate audit public-key`` prints it, and its fingerprint."""

    base64: str
    fingerprint: str  # "SHA256:" and the hex SHA-256 of the raw 32-byte key

    @classmethod
    def of(cls, public_key: Ed25519PublicKey) -> LogKey:
        raw = public_key.public_bytes_raw()
        return cls(base64.b64encode(raw).decode(), "SHA256:" + hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True)
class WitnessStatus:
    name: str
    cosigned: bool
    cosigned_at: int | None  # the cosignature's own timestamp (seconds since the epoch)
    detail: str


def witness_statuses(note: str, witnesses: dict[str, Ed25519PublicKey]) -> list[WitnessStatus]:
    """Each configured witness: whether its cosignature on ``note`` verifies, by name."""
    statuses = []
    for name in sorted(witnesses):
        try:
            at = checkpoint.verify_cosignature(note, name, witnesses[name])
        except IntegrityError as exc:
            statuses.append(WitnessStatus(name, False, None, exc.message))
        else:
            statuses.append(WitnessStatus(name, True, at, "cosignature verifies"))
    return statuses


def age_text(age: timedelta) -> str:
    """``age`` to two units: "4 s", "3 min 5 s", "2 h 10 min", "3 d 4 h"."""
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    while len(units) > 1 and units[0][0] == 0:
        units.pop(0)
    shown = units[:2] if len(units) > 1 and units[1][0] else units[:1]
    return " ".join(f"{n} {unit}" for n, unit in shown)


@dataclass(frozen=True)
class CheckpointView:
    """The newest checkpoint as the page's header shows it."""

    size: int
    root_base64: str
    root_hex: str
    signed_at: datetime
    age: str
    signature_ok: bool
    uncovered: int  # entries the log holds beyond it
    witnesses: list[WitnessStatus]


def checkpoint_view(
    newest: StoredCheckpoint,
    *,
    now: datetime,
    log_size: int,
    signature_ok: bool,
    witnesses: dict[str, Ed25519PublicKey],
) -> CheckpointView:
    return CheckpointView(
        size=newest.size,
        root_base64=base64.b64encode(newest.root).decode(),
        root_hex=newest.root.hex(),
        signed_at=as_utc(newest.signed_at),
        age=age_text(now - as_utc(newest.signed_at)),
        signature_ok=signature_ok,
        uncovered=max(0, log_size - newest.size),
        witnesses=witness_statuses(newest.note, witnesses),
    )
