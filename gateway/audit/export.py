"""Audit entries as a SIEM wants them: OCSF-mapped JSON Lines, or CSV.

Every exported record keeps the entry's log index and leaf hash, so a record
dropped or altered on its way into a SIEM shows up as a gap or a mismatch
against the signed log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.audit.log import StoredEntry

OCSF_VERSION = "1.3.0"
# event -> (class_uid, category_uid, activity_id, class name)
_CLASSES: dict[str, tuple[int, int, int, str]] = {
    "grant.allow": (6004, 6, 1, "Web Resource Access Activity"),
    "grant.deny": (6004, 6, 2, "Web Resource Access Activity"),
    "grant.revoke": (6004, 6, 3, "Web Resource Access Activity"),
    "download.redirect": (6006, 6, 2, "File Hosting Activity"),
    "auth.reject": (3002, 3, 1, "Authentication"),
    "org.add": (6003, 6, 1, "API Activity"),
    "model.publish": (6003, 6, 1, "API Activity"),
    "policy.load": (6003, 6, 3, "API Activity"),
    "keys.rotate": (6003, 6, 3, "API Activity"),
    "keys.rewrap": (6003, 6, 3, "API Activity"),
    "keys.retire": (6003, 6, 4, "API Activity"),
}
_OTHER = (6003, 6, 99, "API Activity")
_FAILURES = frozenset({"grant.deny", "auth.reject"})
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
    class_uid, category_uid, activity_id, class_name = _CLASSES.get(event, _OTHER)
    failed = event in _FAILURES
    actor = entry.get("actor") or {}
    decision = entry.get("decision") or {}
    record: dict[str, Any] = {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "time": int(datetime.fromisoformat(entry["time"]).timestamp() * 1000),
        "severity_id": 3 if failed else 1,
        "status_id": 2 if failed else 1,
        "status": "Failure" if failed else "Success",
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


def to_csv_row(stored: StoredEntry) -> list[object]:
    entry = stored.as_dict()
    actor = entry.get("actor") or {}
    decision = entry.get("decision") or {}
    return [
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
