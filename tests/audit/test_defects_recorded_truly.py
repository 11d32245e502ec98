"""What the log says must be what happened: times compared as instants, refusals as failures,
approvals as the state they leave behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from gateway import __version__
from gateway.api.app import create_app
from gateway.api.background import serving
from gateway.audit.export import to_ocsf
from gateway.bootstrap import Services
from gateway.errors import QuotaExceeded
from gateway.exemptions import ExemptionService, Proposal
from gateway.identity.principal import Principal, Role
from gateway.quotas import Limits
from tests.audit.support import decision_event
from tests.cli.test_cli import WEIGHTGATE
from tests.conftest import MODEL, START, mint, operator

# The entry written by ``decision_event`` at START is at 09:00Z. 10:30+02:00 is
# 08:30Z, before it; 11:30+02:00 is 09:30Z, after it.
BEFORE_IT = "2026-03-02T10:30:00+02:00"
AFTER_IT = "2026-03-02T11:30:00+02:00"


@pytest.fixture
def reader(services: Services) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(services, subject='sec', roles=(Role.SECURITY,))}"}


@pytest.fixture
def api(services: Services) -> Iterator[httpx.Client]:
    port = int(services.settings.url.rsplit(":", 1)[1])
    with (
        serving(create_app(services), "127.0.0.1", port) as url,
        httpx.Client(base_url=url) as client,
    ):
        yield client


def test_an_offset_since_filter_over_the_api_does_not_hide_an_earlier_utc_entry(
    services: Services, api: httpx.Client, reader: dict[str, str]
) -> None:
    services.audit.append([decision_event(services, 0)])

    def found(**params: str) -> list[int]:
        page = api.get("/v1/audit/entries", params=params, headers=reader)
        assert page.status_code == 200, page.text
        return [e["index"] for e in page.json()["entries"]]

    assert found(since=BEFORE_IT) == [0]
    assert found(since=AFTER_IT) == []
    assert found(until=AFTER_IT) == [0]
    assert found(until=BEFORE_IT) == []
    # Without an offset a time is UTC, whatever the server's zone.
    assert found(since="2026-03-02T09:00:00") == [0]
    assert found(since="2026-03-02T09:00:01") == []


def test_a_plus_sign_left_unescaped_in_a_url_is_named_not_silently_misread(
    api: httpx.Client, reader: dict[str, str]
) -> None:
    # In a query string "+" means a space, so "10:30+02:00" typed into curl
    # arrives as "10:30 02:00": refused with a message that says why.
    answer = api.get(f"/v1/audit/entries?since={BEFORE_IT}", headers=reader)
    assert answer.status_code == 422
    assert "%2B" in answer.text


def test_the_cli_reads_offsets_and_takes_a_naive_time_as_utc_whatever_the_local_zone(
    services: Services,
) -> None:
    services.audit.append([decision_event(services, 0)])
    env = {
        **os.environ,
        "WEIGHTGATE_HOME": str(services.settings.home),
        "WEIGHTGATE_KEYS_DIR": str(services.settings.keys_dir),
        "TZ": "America/Los_Angeles",  # eight hours behind: a local reading would miss
    }

    def found(*flags: str) -> list[str]:
        result = subprocess.run(
            [WEIGHTGATE, "audit", "query", "--format", "csv", *flags],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return [line.split(",")[0] for line in result.stdout.splitlines()[1:]]

    assert found("--since", BEFORE_IT) == ["0"]
    assert found("--since", AFTER_IT) == []
    assert found("--since", "2026-03-02T09:00:00") == ["0"]
    assert found("--until", "2026-03-02T09:00:00") == []


def test_offset_filters_compare_instants_on_postgresql(pg_services: Services) -> None:
    pg_services.audit.append([decision_event(pg_services, 0)])
    assert [r.index for r in pg_services.audit.query(since=datetime.fromisoformat(BEFORE_IT))] == [
        0
    ]
    assert pg_services.audit.query(since=datetime.fromisoformat(AFTER_IT)) == []
    assert [r.index for r in pg_services.audit.query(until=START + timedelta(seconds=1))] == [0]


def _admin(subject: str) -> Principal:
    return Principal(
        subject=subject,
        org="rhein",
        country="DE",
        roles=frozenset({Role.ADMIN}),
        token_id=None,
        issuer="test",
    )


def test_a_quota_refusal_is_exported_to_ocsf_as_a_denied_access(catalog_ready: Services) -> None:
    services = catalog_ready
    services.quotas.set(
        _admin("root"), "org", "rhein", Limits(grants_per_hour=0, bytes_per_day=None), operator()
    )
    with pytest.raises(QuotaExceeded):
        services.quotas.check(_admin("anna"), model=MODEL, requested_bytes=1, context=operator())
    [row] = services.audit.query(event="grant.quota")
    record = to_ocsf(row, product_version=__version__)
    assert (record["status"], record["status_id"]) == ("Failure", 2)
    assert (record["class_uid"], record["activity_id"]) == (6004, 2)  # Access Deny
    assert record["status_detail"] == "org quota: 1 grants in the last hour (limit 0)"


def _proposal(services: Services) -> Proposal:
    return Proposal(
        org="deccan",
        kind="license",
        reference="D-4E091-0001",
        countries=["IN"],
        models=[MODEL],
        until=services.clock.now().date() + timedelta(days=90),
        reason="export license granted for the Bengaluru lab",
    )


def test_each_approval_records_the_exemption_as_the_approval_left_it(
    catalog_ready: Services,
) -> None:
    services = catalog_ready
    two_person = ExemptionService(
        services.sessions,
        audit=services.audit,
        catalog=services.catalog,
        policy=services.policy,
        clock=services.clock,
        approvals_required=2,
    )
    proposed = two_person.propose(_admin("alice"), _proposal(services), operator())
    two_person.approve(_admin("bob"), proposed["id"], operator())
    two_person.approve(_admin("carol"), proposed["id"], operator())
    two_person.revoke(_admin("dave"), proposed["id"], operator())
    recorded = [
        (r.as_dict()["event"], r.as_dict()["exemption"])
        for r in services.audit.query()
        if r.as_dict()["event"].startswith("exemption.")
    ]
    assert [(event, state["status"], state["approvals"]) for event, state in recorded] == [
        ("exemption.propose", "pending", []),
        ("exemption.approve", "pending", ["bob"]),
        ("exemption.approve", "approved", ["bob", "carol"]),
        ("exemption.revoke", "revoked", ["bob", "carol"]),
    ]
    assert recorded[2][1]["decided_by"] == "carol"
    assert recorded[3][1]["decided_by"] == "dave"


def test_a_misspelt_event_filter_is_refused_not_answered_with_nothing(
    services: Services, api: httpx.Client, reader: dict[str, str]
) -> None:
    services.audit.append([decision_event(services, 0)])
    answer = api.get("/v1/audit/entries", params={"event": "grant.denied"}, headers=reader)
    assert answer.status_code == 422
    assert "grant.deny" in answer.text  # the known types are listed
    env = {
        **os.environ,
        "WEIGHTGATE_HOME": str(services.settings.home),
        "WEIGHTGATE_KEYS_DIR": str(services.settings.keys_dir),
    }
    result = subprocess.run(
        [WEIGHTGATE, "audit", "query", "--event", "grant.denied"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "not an audit event type" in result.stderr


def test_webhook_subscribers_receive_the_entry_as_logged(catalog_ready: Services) -> None:
    services = catalog_ready
    heard: list[dict[str, object]] = []
    services.audit.subscribe(lambda entry: heard.append(dict(entry)))
    proposed = services.exemptions.propose(_admin("alice"), _proposal(services), operator())
    services.exemptions.approve(_admin("bob"), proposed["id"], operator())
    [approval] = [e for e in heard if e["event"] == "exemption.approve"]
    [logged] = services.audit.query(event="exemption.approve")
    assert approval == logged.as_dict()
    assert approval["exemption"]["status"] == "approved"  # type: ignore[index]
