"""One definition per audit event type: the log refuses others, and the docs cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.audit.events import COMMON_FIELDS, EVENTS, EventType, UnknownEvent, build_event
from gateway.bootstrap import Services
from gateway.notify import NOTIFIED
from tests.audit.support import decision_event
from tests.conftest import START, operator

AUDIT_DOC = Path(__file__).parents[2] / "docs" / "AUDIT.md"
TABLE_START = "<!-- event table: checked against gateway/audit/events.py by a test -->"
TABLE_END = "<!-- end of event table -->"


def _fields(kind: EventType) -> str:
    names = [f"`{n}`" for n in sorted(kind.required)] + [f"`{n}`?" for n in sorted(kind.optional)]
    return ", ".join(names) or "-"


def event_table() -> str:
    """The Markdown table docs/AUDIT.md must hold, made from the registry."""
    lines = [
        "| event | fields (? = optional) | OCSF class / activity | status | webhook | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for name, kind in EVENTS.items():
        ocsf = kind.ocsf
        lines.append(
            f"| `{name}` | {_fields(kind)} | {ocsf.cls.uid} {ocsf.cls.name} / "
            f"{ocsf.activity_id} {ocsf.activity} | {ocsf.status} | "
            f"{'yes' if kind.notify else 'no'} | {kind.description} |"
        )
    return "\n".join(lines)


def test_the_documented_event_table_is_the_registry() -> None:
    text = AUDIT_DOC.read_text(encoding="utf-8")
    documented = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert documented == event_table(), (
        "docs/AUDIT.md's event table differs from gateway/audit/events.py; it should read:\n"
        + event_table()
    )


def test_the_log_refuses_an_event_type_nobody_registered(services: Services) -> None:
    invented = {**decision_event(services, 0), "event": "grant.maybe"}
    with pytest.raises(UnknownEvent, match=r"grant\.maybe"):
        services.audit.append([invented])
    assert services.audit.tree_state()[0] == 0


def test_the_log_refuses_a_field_its_event_type_does_not_declare(services: Services) -> None:
    smuggled = {**decision_event(services, 0), "password": "hunter2"}
    with pytest.raises(UnknownEvent, match="password"):
        services.audit.append([decision_event(services, 1), smuggled])
    assert services.audit.tree_state()[0] == 0  # neither of the request's entries


def test_an_event_missing_a_field_its_type_requires_is_not_built() -> None:
    with pytest.raises(UnknownEvent, match="grant_id"):
        build_event("grant.revoke", time=START, context=operator(), model="m", revision="r")


def test_webhooks_tell_of_exactly_the_events_the_registry_marks() -> None:
    assert {name for name, kind in EVENTS.items() if kind.notify} == NOTIFIED
    assert {"grant.deny", "grant.quota", "exemption.approve"} <= NOTIFIED


def test_every_refusal_is_a_failure_and_no_registered_field_shadows_a_common_one() -> None:
    refusals = {"grant.deny", "grant.quota", "auth.reject", "auth.reject.summary"}
    assert {name for name, kind in EVENTS.items() if kind.ocsf.failure} == refusals
    for kind in EVENTS.values():
        assert not (kind.required | kind.optional) & COMMON_FIELDS, kind.name
        assert not kind.required & kind.optional, kind.name
