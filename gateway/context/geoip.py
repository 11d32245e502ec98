"""Geo-IP: the country of a client address, from a MaxMind DB (mmdb) file.

An IP address shows where infrastructure is registered or routed, not where a
person is, so it is one input among several and the most restrictive wins.
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from typing import Any, Protocol

import maxminddb

from gateway.errors import InvalidInput
from gateway.policy.countries import iso_countries


class GeoIp(Protocol):
    def country_of(self, address: str | None) -> str | None:
        """The ISO country of ``address``, or None when the database does not know it."""
        ...


class NoGeoIp:
    """Used when no database is configured: the IP is not an input."""

    def country_of(self, address: str | None) -> str | None:  # noqa: ARG002 - protocol
        return None


class MaxMindGeoIp:
    def __init__(self, path: Path) -> None:
        try:
            self._reader = maxminddb.open_database(str(path))
            self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise InvalidInput(f"cannot open geo-IP database {path}: {exc}") from None
        self.build_epoch = int(self._reader.metadata().build_epoch)

    def country_of(self, address: str | None) -> str | None:
        if address is None:
            return None
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return None
        record: Any = self._reader.get(parsed)
        if not isinstance(record, dict):
            return None
        # `country` is where MaxMind places the address; `registered_country`
        # is where the block is registered, used only when the first is absent.
        for key in ("country", "registered_country"):
            code = (record.get(key) or {}).get("iso_code")
            if isinstance(code, str) and code.upper() in iso_countries():
                return code.upper()
        return None

    def close(self) -> None:
        self._reader.close()
