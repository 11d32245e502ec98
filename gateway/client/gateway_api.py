"""A thin HTTP client for the gateway that turns problem+json answers back into domain errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from gateway import errors
from gateway.identity.dpop import ProofKey, make_proof

_BY_STATUS: dict[int, type[errors.WeightgateError]] = {
    401: errors.Unauthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    410: errors.Gone,
    422: errors.InvalidInput,
    503: errors.Unavailable,
}


def public_url(url: str) -> str:
    """``url`` fit to print: no user info, query or fragment.

    File URLs carry their capability (``cap=``) and storage URLs their
    signature in the query; either one printed is a download anyone can replay.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return "(an unparseable URL)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def network_error(what: str, url: str, exc: Exception) -> errors.Unavailable:
    """One line naming what failed and where, without the secrets the URL carries."""
    reason = str(exc) or type(exc).__name__
    secret = urlsplit(url).query if "?" in url else ""
    reason = reason.replace(url, public_url(url))
    if secret:
        reason = reason.replace(secret, "...")
    return errors.Unavailable(f"{what} {public_url(url)}: {' '.join(reason.split())}")


def raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    detail = str(body.get("detail") or response.reason_phrase or f"HTTP {response.status_code}")
    issues = body.get("errors")
    if isinstance(issues, list) and issues and isinstance(issues[0], dict):
        # Which field was malformed, not only that something was.
        where = ".".join(str(part) for part in issues[0].get("loc", ()) if part != "body")
        detail = f"{detail}: {where} {issues[0].get('msg', '')}".rstrip()
    if response.status_code == 403 and body.get("code") == "policy_denied":
        raise errors.PolicyDenied(
            detail,
            decision={
                "reasons": body.get("reasons", []),
                "tier": body.get("tier"),
                "policy": body.get("policy"),
            },
        )
    if response.status_code == 401 and body.get("code") == errors.TokenExpired.code:
        raise errors.TokenExpired(f"{detail}: get a new token (HTTP 401)")
    if response.status_code == 429:
        wait = response.headers.get("retry-after", "a while")
        raise errors.QuotaExceeded(f"{detail}; try again in {wait} seconds (HTTP 429)")
    kind = _BY_STATUS.get(response.status_code, errors.Unavailable)
    extra = {"state": body["state"]} if "state" in body else {}
    raise kind(f"{detail} (HTTP {response.status_code})", **extra)


class GatewayClient:
    """The gateway's API; with ``dpop_key``, proves key possession on each call (RFC 9449)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        dpop_key: ProofKey | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not token:
            raise errors.Unauthenticated("no token: set WEIGHTGATE_TOKEN")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._dpop_key = dpop_key
        # File URLs and storage URLs are capabilities: they get no credentials.
        self.http = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _auth_headers(self, method: str, url: str) -> dict[str, str]:
        if self._dpop_key is None:
            return {"Authorization": f"Bearer {self._token}"}
        proof = make_proof(
            self._dpop_key, method=method, url=url, access_token=self._token, now=datetime.now(UTC)
        )
        return {"Authorization": f"DPoP {self._token}", "DPoP": proof}

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.base_url + path
        try:
            response = self.http.request(
                method, url, headers=self._auth_headers(method, url), **kwargs
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise network_error("cannot reach the gateway at", url, exc) from None
        raise_for_problem(response)
        return response

    def text(self, method: str, path: str, **kwargs: Any) -> str:
        """Like ``call``, for endpoints that answer plain text (checkpoints, receipts)."""
        return self._request(method, path, **kwargs).text

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._request(method, path, **kwargs).json()
        except ValueError:
            where = public_url(self.base_url + path)
            raise errors.Unavailable(
                f"{where} did not answer JSON: is WEIGHTGATE_URL a weightgate gateway?"
            ) from None
