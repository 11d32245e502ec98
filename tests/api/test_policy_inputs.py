"""Each input the policy decides on, end to end: IP, screening, classification, pack switches."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.api.app import create_app
from gateway.api.background import serving
from gateway.bootstrap import Services, build_services
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.identity.principal import Role
from gateway.policy.pack import Eccn
from tests.conftest import MODEL, REVISION, mint, operator
from tests.context.test_geoip import write_mmdb

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture
def gateway_with(
    settings: Settings, clock: FixedClock, model_dir: Path
) -> Iterator[Callable[..., tuple[str, Services]]]:
    """Start a gateway with extra settings; orgs rhein (DE) and northwind-de are registered."""
    stack: list[Any] = []

    def start(**overrides: Any) -> tuple[str, Services]:
        configured = settings.model_copy(update=overrides)
        init_keys(configured.keys_dir, dev_issuer=True)
        services = build_services(configured, clock)
        services.catalog.add_org(
            "rhein", name="Rhein AI GmbH", hq="DE", parent_hq=None, context=operator()
        )
        services.catalog.add_org(
            "northwind-de",
            name="Nordwind Rechenzentrum GmbH",
            hq="DE",
            parent_hq=None,
            aliases=("Northwind QCRI",),
            context=operator(),
        )
        services.catalog.publish(
            model_dir,
            model_id=MODEL,
            revision=REVISION,
            eccn=Eccn.AI_MODEL_WEIGHTS,
            training_ops=Decimal("3e26"),
            context=operator(),
        )
        port = int(configured.url.rsplit(":", 1)[1])
        server = serving(create_app(services), "127.0.0.1", port)
        url = server.__enter__()
        stack.append((server, services))
        return url, services

    yield start
    for server, services in stack:
        server.__exit__(None, None, None)
        services.close()


def _grant(url: str, token: str, model: str = MODEL) -> httpx.Response:
    key = base64.b64encode(X25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    return httpx.post(
        f"{url}/v1/grants",
        json={"model": model, "recipient_key": key},
        headers={"Authorization": f"Bearer {token}"},
    )


def _codes(response: httpx.Response) -> set[str]:
    body = response.json()
    reasons = body["reasons"] if "reasons" in body else body["decision"]["reasons"]
    return {reason["code"] for reason in reasons}


def test_ip_country_more_restrictive_than_the_declared_location_wins(
    gateway_with: Callable[..., tuple[str, Services]], tmp_path: Path
) -> None:
    # The test client connects from 127.0.0.1, which this database places in China.
    mmdb = write_mmdb(tmp_path / "geo.mmdb", {"127.0.0.0/8": {"country": {"iso_code": "CN"}}})
    url, services = gateway_with(geoip_db=mmdb)
    response = _grant(url, mint(services))
    assert response.status_code == 403
    assert {"TIER3_BY_IP_COUNTRY", "LOCATION_IP_MISMATCH"} <= _codes(response)
    [entry] = services.audit.query(event="grant.deny")
    assert entry.as_dict()["decision"]["inputs"]["ip_country"]["country"] == "CN"


def test_ip_country_that_agrees_with_the_location_is_recorded_and_allows(
    gateway_with: Callable[..., tuple[str, Services]], tmp_path: Path
) -> None:
    mmdb = write_mmdb(tmp_path / "geo.mmdb", {"127.0.0.0/8": {"country": {"iso_code": "DE"}}})
    url, services = gateway_with(geoip_db=mmdb)
    response = _grant(url, mint(services))
    assert response.status_code == 201
    decision = response.json()["decision"]
    assert decision["inputs"]["ip_country"] == {"country": "DE", "tier": 1, "group": "tier1-aia"}
    assert "LOCATION_IP_MISMATCH" not in _codes(response)
    assert "at least 1E+26" in decision["classification_basis"]


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_listed_party_registered_under_another_name_is_caught_by_its_alias(
    gateway_with: Callable[..., tuple[str, Services]], suffix: str
) -> None:
    url, services = gateway_with(screening_list=FIXTURES / f"csl-synthetic.{suffix}")
    denied = _grant(url, mint(services, org="northwind-de"))
    assert denied.status_code == 403
    assert "DENIED_PARTY_MATCH" in _codes(denied)
    assert any("SYN-EL-0001" in r["message"] for r in denied.json()["reasons"])
    assert _grant(url, mint(services)).status_code == 201


def test_ear99_model_reaches_tier_2_with_its_basis(
    gateway_with: Callable[..., tuple[str, Services]], model_dir: Path
) -> None:
    url, services = gateway_with()
    services.catalog.add_org(
        "deccan", name="Deccan ML", hq="IN", parent_hq=None, context=operator()
    )
    services.catalog.publish(
        model_dir,
        model_id="acme/small",
        revision="r1",
        eccn=Eccn.EAR99,
        training_ops=Decimal("4e24"),
        context=operator(),
    )
    india = mint(services, org="deccan", country="IN")
    allowed = _grant(url, india, model="acme/small")
    assert allowed.status_code == 201
    assert "below 1E+26" in allowed.json()["decision"]["classification_basis"]
    assert _grant(url, india).status_code == 403


def _write_pack(
    directory: Path, name: str, *, drop: str | None = None, text: str | None = None
) -> None:
    directory.mkdir(exist_ok=True)
    shipped = (
        Path(__file__).parents[2] / "gateway/policy/packs/ai-diffusion-2025.toml"
    ).read_text()
    body = (
        text
        if text is not None
        else shipped.replace('name = "ai-diffusion-2025"', f'name = "{name}"')
    )
    if drop is not None:
        body = "\n".join(line for line in body.splitlines() if f'country = "{drop}"' not in line)
    (directory / f"{name}.toml").write_text(body, encoding="utf-8")


def test_admin_switches_packs_without_a_restart_and_the_switch_is_audited(
    gateway_with: Callable[..., tuple[str, Services]], tmp_path: Path
) -> None:
    packs = tmp_path / "packs"
    _write_pack(packs, "no-germany", drop="DE")
    url, services = gateway_with(policy_dir=packs)
    assert _grant(url, mint(services)).status_code == 201
    before = services.policy.current.sha256

    admin = {"Authorization": f"Bearer {mint(services, subject='root', roles=(Role.ADMIN,))}"}
    switched = httpx.post(f"{url}/v1/policy/reload", json={"pack": "no-germany"}, headers=admin)
    assert switched.status_code == 200, switched.text
    assert switched.json()["name"] == "no-germany"
    denied = _grant(url, mint(services))
    assert denied.status_code == 403 and "TIER2_BY_LOCATION" in _codes(denied)
    [load] = services.audit.query(event="policy.load")
    entry = load.as_dict()
    assert entry["pack"]["sha256"] == services.policy.current.sha256 != before
    assert entry["previous"]["sha256"] == before
    assert entry["actor"]["subject"] == "root"


def test_bad_pack_is_refused_and_the_running_pack_stays(
    gateway_with: Callable[..., tuple[str, Services]], tmp_path: Path
) -> None:
    packs = tmp_path / "packs"
    _write_pack(packs, "broken", text='name = "broken"\nversion = "1"\n')
    url, services = gateway_with(policy_dir=packs)
    admin = {"Authorization": f"Bearer {mint(services, subject='root', roles=(Role.ADMIN,))}"}
    before = services.policy.current
    refused = httpx.post(f"{url}/v1/policy/reload", json={"pack": "broken"}, headers=admin)
    assert refused.status_code == 422
    assert "missing key" in refused.json()["detail"]
    assert services.policy.current is before
    assert services.audit.query(event="policy.load") == []
    assert _grant(url, mint(services)).status_code == 201


@pytest.mark.parametrize("pack", ["../../etc/passwd", "/tmp/x.toml", "UPPER"])
def test_reload_never_reads_a_path_named_over_http(
    gateway_with: Callable[..., tuple[str, Services]], pack: str
) -> None:
    url, services = gateway_with()
    admin = {"Authorization": f"Bearer {mint(services, subject='root', roles=(Role.ADMIN,))}"}
    assert (
        httpx.post(f"{url}/v1/policy/reload", json={"pack": pack}, headers=admin).status_code == 422
    )


def test_only_an_admin_may_switch_packs(gateway_with: Callable[..., tuple[str, Services]]) -> None:
    url, services = gateway_with()
    for roles in ((Role.ML,), (Role.SECURITY,)):
        headers = {"Authorization": f"Bearer {mint(services, roles=roles)}"}
        response = httpx.post(f"{url}/v1/policy/reload", json={}, headers=headers)
        assert response.status_code == 403
        assert "admin" in response.json()["detail"]
    assert services.audit.query(event="policy.load") == []
