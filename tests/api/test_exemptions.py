"""Exemptions under the two-person rule, each test named after the abuse it stops."""

from __future__ import annotations

import base64
import os
import subprocess
from datetime import timedelta
from typing import Any

import httpx
import pytest

from gateway.audit.verify import verify_log
from gateway.bootstrap import Services
from gateway.clock import FixedClock
from gateway.identity.principal import Role
from tests.cli.test_cli import WEIGHTGATE
from tests.conftest import MODEL, mint

RECIPIENT = base64.b64encode(bytes(range(1, 33))).decode()


def _admin(services: Services, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(services, subject=name, roles=(Role.ADMIN,))}"}


def _propose(url: str, services: Services, **overrides: Any) -> httpx.Response:
    body = {
        "org": "deccan",
        "kind": "license",
        "reference": "D-4E091-0001",
        "countries": ["IN"],
        "models": [MODEL],
        "until": (services.clock.now().date() + timedelta(days=90)).isoformat(),
        "reason": "export license granted for the Bengaluru lab",
        **overrides,
    }
    return httpx.post(f"{url}/v1/exemptions", json=body, headers=_admin(services, "alice"))


def _grant(
    url: str, services: Services, org: str = "deccan", country: str = "IN"
) -> httpx.Response:
    token = mint(services, subject="priya", org=org, country=country)
    return httpx.post(
        f"{url}/v1/grants",
        json={"model": MODEL, "recipient_key": RECIPIENT},
        headers={"Authorization": f"Bearer {token}"},
    )


def _approved(url: str, services: Services, **overrides: Any) -> str:
    proposed = _propose(url, services, **overrides)
    assert proposed.status_code == 201, proposed.text
    exemption_id: str = proposed.json()["id"]
    approved = httpx.post(
        f"{url}/v1/exemptions/{exemption_id}/approve", headers=_admin(services, "bob")
    )
    assert approved.json()["status"] == "approved"
    return exemption_id


def test_self_approval_is_refused(gateway_url: str, catalog_ready: Services) -> None:
    exemption_id = _propose(gateway_url, catalog_ready).json()["id"]
    own = httpx.post(
        f"{gateway_url}/v1/exemptions/{exemption_id}/approve",
        headers=_admin(catalog_ready, "alice"),
    )
    assert own.status_code == 403
    assert "proposed" in own.json()["detail"]
    listed = httpx.get(f"{gateway_url}/v1/exemptions", headers=_admin(catalog_ready, "carol"))
    assert listed.json()["exemptions"][0]["status"] == "pending"
    assert _grant(gateway_url, catalog_ready).status_code == 403


def test_approval_by_a_non_admin_is_refused(gateway_url: str, catalog_ready: Services) -> None:
    exemption_id = _propose(gateway_url, catalog_ready).json()["id"]
    ml = {"Authorization": f"Bearer {mint(catalog_ready, subject='bob', roles=(Role.ML,))}"}
    response = httpx.post(f"{gateway_url}/v1/exemptions/{exemption_id}/approve", headers=ml)
    assert response.status_code == 403 and "admin role" in response.json()["detail"]
    assert catalog_ready.audit.query(event="exemption.approve") == []


def test_a_second_admin_opens_the_door_and_the_decision_names_it(
    gateway_url: str, catalog_ready: Services
) -> None:
    exemption_id = _approved(gateway_url, catalog_ready)
    granted = _grant(gateway_url, catalog_ready)
    assert granted.status_code == 201, granted.text
    reasons = {r["code"]: r for r in granted.json()["decision"]["reasons"]}
    assert exemption_id in reasons["EXEMPTION_APPLIES"]["message"]
    assert granted.json()["decision"]["exemption"] == exemption_id


@pytest.mark.parametrize("kind", ["uveu", "nveu"])
def test_validated_end_user_stretched_to_a_tier3_country_is_refused(
    gateway_url: str, catalog_ready: Services, kind: str
) -> None:
    response = _propose(
        gateway_url, catalog_ready, org="panda-de", kind=kind, countries=["DE", "CN"]
    )
    assert response.status_code == 422
    assert "only a license can cover a Tier 3 country" in response.json()["detail"]
    assert catalog_ready.audit.query(event="exemption.propose") == []


def test_license_naming_the_tier3_parent_lets_the_subsidiary_in(
    gateway_url: str, catalog_ready: Services
) -> None:
    assert _grant(gateway_url, catalog_ready, org="panda-de", country="DE").status_code == 403
    _approved(gateway_url, catalog_ready, org="panda-de", countries=["CN"])
    assert _grant(gateway_url, catalog_ready, org="panda-de", country="DE").status_code == 201


def test_revoked_license_still_in_use_stops_at_once(
    gateway_url: str, catalog_ready: Services
) -> None:
    exemption_id = _approved(gateway_url, catalog_ready)
    earlier = _grant(gateway_url, catalog_ready).json()
    revoked = httpx.post(
        f"{gateway_url}/v1/exemptions/{exemption_id}/revoke", headers=_admin(catalog_ready, "carol")
    )
    assert revoked.json()["status"] == "revoked"
    assert _grant(gateway_url, catalog_ready).status_code == 403
    assert httpx.get(earlier["files"][0]["url"]).status_code == 410


def test_expired_exemption_opens_nothing(
    gateway_url: str, catalog_ready: Services, clock: FixedClock
) -> None:
    _approved(gateway_url, catalog_ready, until=catalog_ready.clock.now().date().isoformat())
    earlier = _grant(gateway_url, catalog_ready)
    assert earlier.status_code == 201
    clock.advance(timedelta(days=1))
    assert _grant(gateway_url, catalog_ready).status_code == 403


def test_stale_proposal_cannot_be_approved(
    gateway_url: str, catalog_ready: Services, clock: FixedClock
) -> None:
    exemption_id = _propose(gateway_url, catalog_ready).json()["id"]
    clock.advance(timedelta(days=7))
    late = httpx.post(
        f"{gateway_url}/v1/exemptions/{exemption_id}/approve", headers=_admin(catalog_ready, "bob")
    )
    assert late.status_code == 409 and "expired" in late.json()["detail"]


def test_rejected_proposal_stays_shut(gateway_url: str, catalog_ready: Services) -> None:
    exemption_id = _propose(gateway_url, catalog_ready).json()["id"]
    rejected = httpx.post(
        f"{gateway_url}/v1/exemptions/{exemption_id}/reject",
        json={"reason": "the license number does not exist"},
        headers=_admin(catalog_ready, "bob"),
    )
    assert rejected.json()["status"] == "rejected"
    again = httpx.post(
        f"{gateway_url}/v1/exemptions/{exemption_id}/approve",
        headers=_admin(catalog_ready, "carol"),
    )
    assert again.status_code == 409
    assert _grant(gateway_url, catalog_ready).status_code == 403


@pytest.mark.parametrize(
    "overrides",
    [
        {"kind": "waiver"},
        {"countries": ["XX"]},
        {"org": "nobody"},
        {"models": ["acme/none"]},
        {"models": ["*", MODEL]},
        {"until": "2020-01-01"},
        {"reason": " "},
    ],
    ids=[
        "unknown-kind",
        "unknown-country",
        "unknown-org",
        "unknown-model",
        "star-and-ids",
        "already-over",
        "no-reason",
    ],
)
def test_malformed_proposal_changes_nothing(
    gateway_url: str, catalog_ready: Services, overrides: dict[str, Any]
) -> None:
    response = _propose(gateway_url, catalog_ready, **overrides)
    assert response.status_code in (404, 422), response.text
    assert (
        httpx.get(f"{gateway_url}/v1/exemptions", headers=_admin(catalog_ready, "bob")).json()[
            "exemptions"
        ]
        == []
    )


def test_every_step_is_in_a_log_that_verifies(gateway_url: str, catalog_ready: Services) -> None:
    exemption_id = _approved(gateway_url, catalog_ready)
    _grant(gateway_url, catalog_ready)
    httpx.post(
        f"{gateway_url}/v1/exemptions/{exemption_id}/revoke", headers=_admin(catalog_ready, "alice")
    )
    events = [r.as_dict()["event"] for r in catalog_ready.audit.query()]
    for event in ("exemption.propose", "exemption.approve", "grant.allow", "exemption.revoke"):
        assert event in events
    audit = catalog_ready.audit
    report = verify_log(
        audit.entries(),
        origin=audit.origin,
        public_key=catalog_ready.keys.audit_signer.public_key(),
        checkpoint_notes=audit.checkpoint_notes(),
        state=audit.tree_state(),
    )
    assert report.ok, report.problems


def test_exemptions_from_the_command_line(gateway_url: str, catalog_ready: Services) -> None:
    def run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "WEIGHTGATE_URL": gateway_url,
            "COLUMNS": "250",  # a wide terminal, so table cells are not cut short
            "WEIGHTGATE_TOKEN": mint(catalog_ready, subject=name, roles=(Role.ADMIN,)),
        }
        return subprocess.run(
            [WEIGHTGATE, "exemptions", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    proposed = run(
        "alice",
        "propose",
        "--org",
        "deccan",
        "--kind",
        "nveu",
        "--reference",
        "NVEU-7",
        "--countries",
        "IN",
        "--models",
        "*",
        "--until",
        "2026-12-31",
        "--reason",
        "validated data centre",
    )
    assert proposed.returncode == 0, proposed.stderr
    exemption_id = proposed.stdout.split()[0]
    refused = run("alice", "approve", exemption_id)
    assert refused.returncode == 3 and "cannot approve" in refused.stderr
    assert run("bob", "approve", exemption_id).returncode == 0
    assert "approved" in run("carol", "list").stdout
    assert _grant(gateway_url, catalog_ready).status_code == 201


def test_a_proposal_keeps_its_conditions_and_start_date(
    gateway_url: str, catalog_ready: Services
) -> None:
    start = catalog_ready.clock.now().date() + timedelta(days=3)
    proposed = _propose(
        gateway_url,
        catalog_ready,
        conditions="no re-export; audit yearly",
        valid_from=start.isoformat(),
    )
    assert proposed.status_code == 201, proposed.text
    body = proposed.json()
    # Accepted and then dropped, an admin would approve provisos nobody recorded.
    assert body["conditions"] == "no re-export; audit yearly"
    assert body["valid_from"] == start.isoformat()
    assert body["proposed_at"] == catalog_ready.clock.now().isoformat()
