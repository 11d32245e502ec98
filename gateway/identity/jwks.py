"""Where an issuer's public keys come from: a file, or a JWKS URL cached with care.

The remote source follows what identity providers and their users learned the
hard way: keys are cached for a TTL; a token with an unknown ``kid`` (the
provider rotated) triggers a refetch, but at most one per interval so forged
``kid`` values cannot make us hammer the provider; and when the provider is
down, the last good keys keep working until they are too old to trust.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import jwt

from gateway import metrics
from gateway.clock import Clock
from gateway.errors import InvalidInput

_log = logging.getLogger(__name__)
MAX_JWKS_BYTES = 256 * 1024


class JwksSource(Protocol):
    def key(self, kid: str) -> jwt.PyJWK | None:
        """The key with this id, or None if the issuer does not (or no longer) publish it."""
        ...

    def held_key(self, kid: str) -> jwt.PyJWK | None:
        """The key as held now, if trusting it needs no fetch; None: ask ``key``, which may."""
        ...


def parse_jwks(data: Any, algorithms: tuple[str, ...], *, source: str) -> dict[str, jwt.PyJWK]:
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise InvalidInput(f"JWKS {source}: not a JSON Web Key Set")
    keys = {}
    for raw in data["keys"]:
        if not isinstance(raw, dict):
            raise InvalidInput(f"JWKS {source}: a key is not an object")
        # Keys for encryption, or naming an algorithm outside the issuer's
        # allow-list, are ignored: a published HMAC key can never be selected.
        if raw.get("use", "sig") != "sig" or raw.get("alg", algorithms[0]) not in algorithms:
            continue
        if "d" in raw or "k" in raw:
            raise InvalidInput(f"JWKS {source}: key {raw.get('kid')!r} is private or symmetric")
        kid = raw.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidInput(f"JWKS {source}: every key needs a kid")
        try:
            keys[kid] = jwt.PyJWK(raw)
        except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"JWKS {source}: key {kid!r}: {exc}") from None
    return keys


class FileJwks:
    def __init__(self, path: Path, algorithms: tuple[str, ...]) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot load JWKS {path}: {exc}") from None
        self._keys = parse_jwks(data, algorithms, source=str(path))

    def key(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)

    def held_key(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)


def check_jwks_url(url: str) -> str:
    """HTTPS only; plain HTTP is allowed for a provider on this machine's loopback."""
    return check_provider_url(url, "JWKS URL")


def check_provider_url(url: str, what: str) -> str:
    """An identity provider's URL: HTTPS, or plain HTTP to this machine's loopback only."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- a port that is not a number raises here, not on first use
    except ValueError:
        raise InvalidInput(f"{what} {url!r} is not a URL") from None
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname is not None:
        host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
        try:
            if ipaddress.ip_address(host).is_loopback:
                return url
        except ValueError:
            pass
    raise InvalidInput(f"{what} {url!r} must be https (http only on loopback)")


class RemoteJwks:
    def __init__(
        self,
        url: str,
        algorithms: tuple[str, ...],
        clock: Clock,
        *,
        ttl: timedelta = timedelta(minutes=5),
        refetch_interval: timedelta = timedelta(seconds=30),
        max_stale: timedelta = timedelta(hours=24),
        http: httpx.Client | None = None,
    ) -> None:
        self._url = check_jwks_url(url)
        self._algorithms = algorithms
        self._clock = clock
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._max_stale = max_stale
        self._http = http or httpx.Client(timeout=5.0, follow_redirects=False)
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: datetime | None = None  # when the keys we hold were fetched
        self._attempted_at: datetime | None = None
        self.fetches = 0
        self.failures = 0

    def key(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            now = self._clock.now()
            fresh = self._fetched_at is not None and now - self._fetched_at < self._ttl
            if not fresh or (kid not in self._keys and self._may_attempt(now)):
                self._refresh(now)
            if self._fetched_at is None or now - self._fetched_at >= self._max_stale:
                return None  # keys too old to trust: fail closed
            return self._keys.get(kid)

    def held_key(self, kid: str) -> jwt.PyJWK | None:
        # Never waits: ``key`` holds the lock through a fetch, and this is
        # asked on the event loop. Busy means "ask ``key``", in a thread.
        if not self._lock.acquire(blocking=False):
            return None
        try:
            fresh = (
                self._fetched_at is not None and self._clock.now() - self._fetched_at < self._ttl
            )
            return self._keys.get(kid) if fresh else None
        finally:
            self._lock.release()

    def _may_attempt(self, now: datetime) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._refetch_interval

    def _refresh(self, now: datetime) -> None:
        if not self._may_attempt(now):
            return
        self._attempted_at = now
        self.fetches += 1
        try:
            keys = self._fetch()
        except (httpx.HTTPError, ValueError, InvalidInput) as exc:
            # Keep serving the last good keys; `key()` stops once they are too old.
            self.failures += 1
            metrics.JWKS_REFRESH_FAILURES.inc()
            _log.warning("JWKS refresh from %s failed: %s", self._url, exc)
            return
        self._keys = keys
        self._fetched_at = now

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        response = self._http.get(self._url, headers={"Accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > MAX_JWKS_BYTES:
            raise InvalidInput("JWKS response is too large")
        return parse_jwks(response.json(), self._algorithms, source=self._url)
