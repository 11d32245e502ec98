"""The columns copied out of each entry so the log can be filtered, and how to check them.

Filters run on these columns, so a column that disagreed with its entry would
hide the entry from a reviewer's query while the entry itself still hashed
correctly. ``audit verify`` therefore recomputes them from the entry bytes and
compares (``mismatch``). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# In the order the verifier reads them, after idx, entry and leaf hash.
NAMES = ("event", "subject", "org_id", "model_id", "decision", "country", "tier", "time")


def indexed_columns(event: Mapping[str, Any]) -> dict[str, Any]:
    """What the sequencer stores beside an entry; times in UTC, as every comparison expects."""
    actor = _mapping(event.get("actor"))
    decision = _mapping(event.get("decision"))
    return {
        "event": str(event["event"]),
        "subject": actor.get("subject"),
        "org_id": actor.get("org"),
        "model_id": event.get("model"),
        "decision": decision.get("effect"),
        "country": actor.get("country"),
        "tier": decision.get("tier"),
        "time": as_utc(datetime.fromisoformat(str(event["time"]))),
    }


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive time (SQLite hands them back) is taken as UTC, as it was stored."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def mismatch(entry: Mapping[str, Any], stored: tuple[Any, ...]) -> str | None:
    """The first column that does not say what the entry says, if any.

    ``audit verify`` asks this of every entry, so the common case (all agree,
    the time stored as SQLite writes it) is a handful of comparisons; only a
    disagreement, or another storage form, takes the exact path that names
    the column.
    """
    if _agrees(entry, stored):
        return None
    return _first_mismatch(entry, stored)


def _agrees(entry: Mapping[str, Any], stored: tuple[Any, ...]) -> bool:
    actor, decision = _mapping(entry.get("actor")), _mapping(entry.get("decision"))
    event, subject, org, model, effect, country, tier, time = stored
    written = entry.get("time")
    return (
        event == entry.get("event")
        and subject == actor.get("subject")
        and org == actor.get("org")
        and model == entry.get("model")
        and effect == decision.get("effect")
        and country == actor.get("country")
        and tier == decision.get("tier")
        and isinstance(time, str)
        and isinstance(written, str)
        and written.endswith("+00:00")
        and _as_sqlite_text(written[:-6]) == time
    )


def _as_sqlite_text(utc_iso: str) -> str:
    """``2026-03-02T09:00:00[.ffffff]`` as SQLite stores it: ``2026-03-02 09:00:00.ffffff``."""
    text = utc_iso.replace("T", " ", 1)
    return text if "." in text else text + ".000000"


def _first_mismatch(entry: Mapping[str, Any], stored: tuple[Any, ...]) -> str | None:
    try:
        expected = indexed_columns(entry)
    except (KeyError, ValueError, TypeError):
        return "event"
    for name, value in zip(NAMES, stored, strict=True):
        found = value
        if name == "time":
            found = as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)
        if found != expected[name]:
            return name
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
