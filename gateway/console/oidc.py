"""The console's OIDC sign-in: the authorization URL, the code exchange, the ID token.

The authorization-code flow with PKCE (RFC 7636, S256) for a public client:
the console holds no client secret, so the verifier that only this sign-in
knows is what makes a stolen code worthless. httpx and PyJWT errors end here,
translated into ``SignInFailed`` (what went wrong at the provider) or
``Unauthenticated`` (a token that is not good enough); nothing else leaks out.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from gateway.console.sessions import SignInUnderWay, pkce_challenge
from gateway.errors import Unauthenticated
from gateway.identity.issuers import ConsoleClient, TrustedIssuer
from gateway.identity.tokens import MAX_TIMESTAMP, MAX_TOKEN_BYTES, signed_claims
from gateway.names import is_printable

# A token response is two or three tokens of at most 8 KiB and a few fields.
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
# The exchange happens while a person waits on the callback page.
EXCHANGE_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_ERROR_CODE_CHARS = 64
# A provider that is down or overloaded, as opposed to one that refused.
_UNAVAILABLE = frozenset({502, 503, 504})


class SignInFailed(Exception):
    """A sign-in that cannot finish for a reason outside the token checks: its error page."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail


@dataclass(frozen=True)
class Tokens:
    access_token: str
    id_token: str | None


def authorization_url(
    client: ConsoleClient, redirect_uri: str, state: str, sign_in: SignInUnderWay
) -> str:
    """Where the browser goes to sign in: the provider's endpoint with the request's parameters."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(client.scopes),
            "state": state,
            "nonce": sign_in.nonce,
            "code_challenge": pkce_challenge(sign_in.code_verifier),
            "code_challenge_method": "S256",
        }
    )
    # An endpoint may carry its own query (RFC 6749, 3.1): it is kept.
    separator = "&" if "?" in client.authorization_endpoint else "?"
    return client.authorization_endpoint + separator + query


def exchange_code(
    client: ConsoleClient,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    http: httpx.Client | None = None,
) -> Tokens:
    """The provider's tokens for ``code``; any failure to get them is ``SignInFailed``."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client.client_id,
        "code_verifier": code_verifier,
    }
    owned = http is None
    session = http or httpx.Client(timeout=EXCHANGE_TIMEOUT, follow_redirects=False)
    try:
        with session.stream(
            "POST", client.token_endpoint, data=form, headers={"Accept": "application/json"}
        ) as response:
            body = _bounded_body(response)
            status = response.status_code
    except httpx.HTTPError as exc:
        raise SignInFailed(
            503,
            "The identity provider did not answer",
            f"Its token endpoint could not be reached ({type(exc).__name__}); "
            "nobody was signed in. Try again in a moment.",
        ) from None
    finally:
        if owned:
            session.close()
    if status in _UNAVAILABLE:
        raise SignInFailed(
            503,
            "The identity provider is unavailable",
            f"Its token endpoint answered {status}; nobody was signed in. Try again in a moment.",
        )
    document = _json_object(body)
    if status != 200:
        error = document.get("error") if document is not None else None
        named = f" ({error})" if isinstance(error, str) and _short_code(error) else ""
        raise SignInFailed(
            502,
            "The identity provider refused the sign-in",
            f"Its token endpoint answered {status}{named} instead of tokens; nobody was signed in.",
        )
    if document is None:
        raise _unusable("it is not a JSON object")
    access_token = document.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise _unusable("it carries no access_token")
    token_type = document.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise _unusable("its token is not a bearer token")
    id_token = document.get("id_token")
    if id_token is not None and not isinstance(id_token, str):
        raise _unusable("its id_token is not a string")
    return Tokens(access_token, id_token or None)


def _bounded_body(response: httpx.Response) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_TOKEN_RESPONSE_BYTES:
            raise SignInFailed(
                502,
                "The identity provider's answer was refused",
                f"Its token response is larger than {MAX_TOKEN_RESPONSE_BYTES // 1024} KiB.",
            )
    return bytes(body)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _short_code(error: str) -> bool:
    # RFC 6749 error codes are short ASCII words; anything else is not echoed.
    return 0 < len(error) <= _ERROR_CODE_CHARS and all(
        c.isascii() and (c.isalnum() or c in "_-.") for c in error
    )


def _unusable(why: str) -> SignInFailed:
    return SignInFailed(
        502,
        "The identity provider's answer was refused",
        f"Its token response cannot be used: {why}. Nobody was signed in.",
    )


def check_id_token(
    id_token: str,
    issuer: TrustedIssuer,
    client: ConsoleClient,
    *,
    nonce: str,
    now: datetime,
    leeway: timedelta,
) -> None:
    """An ID token signed by ``issuer``, for this client, for this sign-in (its nonce), unexpired.

    Verified with the issuer's own keys and algorithms, as access tokens are;
    the nonce ties it to the sign-in this browser began, so an ID token
    captured from another sign-in is refused.
    """
    if len(id_token.encode()) > MAX_TOKEN_BYTES:
        raise Unauthenticated("ID token is larger than 8 KiB")
    claims, _, _, _ = signed_claims(
        id_token,
        issuer,
        audience=client.client_id,
        require=["exp", "iat", "iss", "aud", "sub", "nonce"],
        what="ID token",
    )
    _check_times(claims, now, leeway)
    # OIDC Core 3.1.3.7: with several audiences, the authorized party must be us.
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client.client_id:
        raise Unauthenticated("ID token was issued to another client (azp)")
    sent = claims["nonce"]
    if not isinstance(sent, str) or not is_printable(sent):
        raise Unauthenticated("ID token nonce is not this sign-in's")
    if not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise Unauthenticated("ID token nonce is not this sign-in's")


def _check_times(claims: dict[str, Any], now: datetime, leeway: timedelta) -> None:
    for claim in ("exp", "iat", "nbf"):
        value = claims.get(claim, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TIMESTAMP:
            raise Unauthenticated(f"ID token {claim} is not a time")
    moment = now.timestamp()
    if claims["exp"] <= moment - leeway.total_seconds():
        raise Unauthenticated("ID token has expired")
    if claims.get("nbf", claims["iat"]) > moment + leeway.total_seconds():
        raise Unauthenticated("ID token is not valid yet")
