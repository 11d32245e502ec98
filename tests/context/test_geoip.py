"""Geo-IP lookups from a real mmdb file the test builds, and who gets to name the client address."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from gateway.api.deps import client_address
from gateway.context.geoip import MaxMindGeoIp, NoGeoIp
from gateway.errors import InvalidInput


def write_mmdb(path: Path, networks: dict[str, dict[str, object]]) -> Path:
    """A GeoIP2-Country-shaped database: each network maps to its record."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Country")
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def geoip(tmp_path: Path) -> MaxMindGeoIp:
    return MaxMindGeoIp(
        write_mmdb(
            tmp_path / "country.mmdb",
            {
                "203.0.113.0/24": {
                    "country": {"iso_code": "DE"},
                    "registered_country": {"iso_code": "US"},
                },
                "198.51.100.0/24": {"registered_country": {"iso_code": "CN"}},
                "192.0.2.0/24": {"country": {"iso_code": "XK"}},
                "2001:db8::/32": {"country": {"iso_code": "IR"}},
            },
        )
    )


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("203.0.113.7", "DE"),
        ("198.51.100.1", "CN"),
        ("2001:db8::1", "IR"),
        ("192.0.2.1", None),
        ("8.8.8.8", None),
        ("not-an-ip", None),
        (None, None),
    ],
    ids=[
        "located",
        "registered-only",
        "ipv6",
        "non-iso-code-ignored",
        "unknown",
        "garbage",
        "no-address",
    ],
)
def test_country_of_an_address(
    geoip: MaxMindGeoIp, address: str | None, country: str | None
) -> None:
    assert geoip.country_of(address) == country


def test_without_a_database_the_ip_is_no_input() -> None:
    assert NoGeoIp().country_of("203.0.113.7") is None


def test_a_corrupt_database_is_refused_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(InvalidInput, match="geo-IP database"):
        MaxMindGeoIp(bad)


PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.7", None, "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        ("10.1.1.1", "198.51.100.1", "198.51.100.1"),
        ("10.1.1.1", "1.2.3.4, 198.51.100.1, 10.2.2.2", "198.51.100.1"),
        ("10.1.1.1", None, "10.1.1.1"),
    ],
    ids=[
        "direct",
        "client-forges-header",
        "behind-proxy",
        "spoofed-left-hop-ignored",
        "proxy-without-header",
    ],
)
def test_client_address_believes_only_trusted_proxies(
    peer: str, forwarded: str | None, expected: str
) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected
