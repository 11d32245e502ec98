"""The cases a policy change would touch: registered organisations and recent grant decisions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from gateway.audit.log import AuditLog
from gateway.catalog import Catalog
from gateway.policy.decision import DecisionRequest
from gateway.policy.exemptions import ExemptionKind, may_cover
from gateway.policy.pack import Eccn, PolicyPack


def organisation_cases(catalog: Catalog, on: datetime) -> list[tuple[str, DecisionRequest]]:
    """Each organisation as a requester at its own headquarters asking for 4E091 weights."""
    return [
        (
            f"org {org.id} ({org.name})",
            DecisionRequest(
                location=org.hq,
                org_hq=org.hq,
                parent_hq=org.parent_hq,
                ip_country=None,
                eccn=Eccn.AI_MODEL_WEIGHTS,
                on=on.date(),
            ),
        )
        for org in catalog.orgs()
    ]


def recent_grant_cases(
    audit: AuditLog, since: datetime, *, limit: int = 100_000
) -> list[tuple[str, DecisionRequest]]:
    """Grant decisions since ``since``, rebuilt from the inputs their audit entries recorded.

    At most ``limit`` of each effect, the oldest first.
    """
    cases = []
    for event in ("grant.allow", "grant.deny"):
        for row in audit.query(event=event, since=since, limit=limit):
            entry = row.as_dict()
            request = _request(entry["decision"])
            if request is not None:
                actor = entry.get("actor") or {}
                cases.append(
                    (
                        f"#{row.index} {event} {actor.get('subject')} ({actor.get('org')}) "
                        f"{entry.get('model')}",
                        request,
                    )
                )
    return sorted(cases)


def _request(decision: dict[str, Any]) -> DecisionRequest | None:
    inputs = decision.get("inputs", {})
    if "location" not in inputs:
        return None

    def country(name: str) -> str | None:
        value = inputs.get(name)
        return value["country"] if value else None

    return DecisionRequest(
        location=inputs["location"]["country"],
        org_hq=country("org_hq"),
        parent_hq=country("parent_hq"),
        ip_country=country("ip_country"),
        eccn=Eccn(decision["eccn"]),
        on=datetime.fromisoformat(decision["on"]).date(),
    )


def exemption_changes(
    exemptions: list[dict[str, Any]], a: PolicyPack, b: PolicyPack, *, on_a: date, on_b: date
) -> list[str]:
    """Approved exemptions whose reach changes: a validated end user cannot cover Tier 3."""
    lines = []
    for item in exemptions:
        if item["status"] != "approved":
            continue
        kind = ExemptionKind(item["kind"])
        for country in item["countries"]:
            before = may_cover(kind, a.tier_of(country, on_a).tier)
            after = may_cover(kind, b.tier_of(country, on_b).tier)
            if before != after:
                verb = "would stop covering" if before else "would start covering"
                lines.append(
                    f"{item['id']} ({kind.value} {item['reference']}, {item['org']}) "
                    f"{verb} {country}"
                )
    return lines
