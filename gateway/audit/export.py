"""Audit entries as a SIEM wants them: OCSF-mapped JSON Lines, or CSV.

Every exported record keeps the entry's log index and leaf hash, so a record
dropped or altered on its way into a SIEM shows up as a gap or a mismatch
against the signed log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.audit.events import API_ACTIVITY, EVENTS, Ocsf
from gateway.audit.log import StoredEntry

OCSF_VERSION = "1.3.0"
_UNREGISTERED = Ocsf(API_ACTIVITY, 99, "Other", failure=True)
CSV_COLUMNS = (
    "index",
    "time",
    "event",
    "subject",
    "org",
    "country",
    "model",
    "revision",
    "decision",
    "tier",
    "reasons",
    "policy",
    "grant_id",
    "request_id",
    "leaf_hash",
)


def to_ocsf(stored: StoredEntry, *, product_version: str) -> dict[str, Any]:
    entry = stored.as_dict()
    event = str(entry.get("event"))
    # Every stored entry's type is registered (the log refuses others); an
    # entry that is not is exported, flagged, rather than dropped from a SIEM.
    registered = EVENTS.get(event)
    ocsf = registered.ocsf if registered is not None else _UNREGISTERED
    failed = ocsf.failure
    actor = entry.get("actor") or {}
    decision = entry.get("decision") or {}
    record: dict[str, Any] = {
        "class_uid": ocsf.cls.uid,
        "class_name": ocsf.cls.name,
        "category_uid": ocsf.cls.category_uid,
        "activity_id": ocsf.activity_id,
        "activity_name": ocsf.activity,
        "type_uid": ocsf.cls.uid * 100 + ocsf.activity_id,
        "time": int(datetime.fromisoformat(entry["time"]).timestamp() * 1000),
        "severity_id": 3 if failed else 1,
        "status_id": 2 if failed else 1,
        "status": ocsf.status,
        "message": _message(event, entry),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "weightgate",
                "vendor_name": "weightgate",
                "version": product_version,
            },
            "uid": f"{entry.get('origin')}/{stored.index}",
            "log_provider": entry.get("origin"),
            "sequence": stored.index,
            "correlation_uid": entry.get("request_id"),
        },
        "actor": {"user": {"uid": actor.get("subject"), "org": {"uid": actor.get("org")}}},
        "src_endpoint": {"ip": (entry.get("client") or {}).get("address")},
        "unmapped": {"weightgate": entry, "leaf_hash": stored.leaf_hash.hex()},
    }
    if decision:
        record["status_detail"] = " ".join(r["code"] for r in decision.get("reasons", []))
    elif isinstance(quota := entry.get("quota"), dict) and "exceeded" in quota:
        record["status_detail"] = f"{quota.get('scope')} quota: {quota['exceeded']}"
    if entry.get("model"):
        record["resources"] = [
            {"uid": entry["model"], "type": "model", "version": entry.get("revision")}
        ]
    return record


def _message(event: str, entry: dict[str, Any]) -> str:
    actor = entry.get("actor") or {}
    decision = entry.get("decision") or {}
    parts = [event, str(actor.get("subject") or "-")]
    if entry.get("model"):
        parts.append(f"{entry['model']}@{entry.get('revision')}")
    if decision:
        parts.append(f"{decision.get('effect')} (tier {decision.get('tier')})")
    return " ".join(parts)


# A cell a spreadsheet would run as a formula (OWASP "CSV injection"). Subjects,
# organisations and reasons come from tokens and requests, so any of them may
# begin like one; such a cell is written with a leading quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def to_csv_row(stored: StoredEntry) -> list[object]:
    """One entry as a CSV row (``CSV_COLUMNS``), safe to open in a spreadsheet."""
    entry = stored.as_dict()
    actor = entry.get("actor") or {}
    decision = entry.get("decision") or {}
    row = [
        stored.index,
        entry.get("time", ""),
        entry.get("event", ""),
        actor.get("subject") or "",
        actor.get("org") or "",
        actor.get("country") or "",
        entry.get("model", ""),
        entry.get("revision", ""),
        decision.get("effect", ""),
        decision.get("tier", ""),
        " ".join(r["code"] for r in decision.get("reasons", [])),
        decision.get("policy", ""),
        entry.get("grant_id", ""),
        entry.get("request_id", ""),
        stored.leaf_hash.hex(),
    ]
    return [_cell(value) for value in row]
