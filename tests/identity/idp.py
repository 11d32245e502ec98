"""A small identity provider on loopback: a JWKS that rotates, tokens, outages, and sign-in.

Sign-in is the OIDC authorization-code flow with PKCE, as the console uses
it: the authorization endpoint signs in whoever the test says is logged in
(``signed_in``) without asking, and the token endpoint holds each code to
its client, redirect URI and S256 challenge, once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "https://idp.test"
AUDIENCE = "weightgate"
CLIENT_ID = "weightgate-console"
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | Ed25519PrivateKey


@dataclass(frozen=True)
class _Authorization:
    """What a code was issued for: the token endpoint holds the exchange to all of it."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    claims: dict[str, Any]


class IdentityProvider:
    def __init__(self) -> None:
        self.keys: dict[str, tuple[SigningKey, str]] = {}
        self.up = True
        self.jwks_requests = 0
        self.url = ""  # the JWKS URL
        self.base = ""  # the provider's root: /jwks.json, /authorize, /token
        self._counter = 0
        # Sign-in: who is logged in here (their access token's claims), the
        # one client registered, and the time tokens are issued at.
        self.client_id = CLIENT_ID
        self.signed_in: dict[str, Any] | None = None
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        # Set by a test: the authorization endpoint answers with this error.
        self.refuse_with: str | None = None
        # Set by a test: claims that replace the next ID tokens' (a wrong nonce).
        self.id_token_claims: dict[str, Any] = {}
        self.token_refusals: list[str] = []
        self._codes: dict[str, _Authorization] = {}
        self._lock = threading.Lock()

    @property
    def authorization_endpoint(self) -> str:
        return self.base + "/authorize"

    @property
    def token_endpoint(self) -> str:
        return self.base + "/token"

    def add_key(self, algorithm: str = "ES256") -> str:
        self._counter += 1
        kid = f"key-{self._counter}"
        key: SigningKey
        if algorithm in ("RS256", "PS256"):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = Ed25519PrivateKey.generate()
        self.keys[kid] = (key, algorithm)
        return kid

    def rotate(self) -> str:
        """Publish a new key; the old ones stay until `retire` removes them."""
        return self.add_key()

    def retire(self, kid: str) -> None:
        del self.keys[kid]

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid, (key, algorithm) in self.keys.items():
            public = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key()))
            entries.append({**public, "kid": kid, "alg": algorithm, "use": "sig"})
        return {"keys": entries}

    def token(
        self,
        kid: str,
        now: datetime,
        *,
        ttl: timedelta = timedelta(minutes=10),
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        key, algorithm = self.keys[kid]
        body: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "anna",
            "org": "rhein",
            "country": "DE",
            "roles": ["ml"],
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": f"jti-{now.timestamp()}-{kid}",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})

    def authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """The authorization endpoint: (303, where to) back to the client, or (400, why)."""
        redirect_uri = query.get("redirect_uri", "")
        # An unknown client or a bad redirect URI is never redirected to (RFC 6749, 4.1.2.1).
        if query.get("client_id") != self.client_id:
            return 400, "unknown client_id"
        if urlsplit(redirect_uri).scheme not in ("http", "https"):
            return 400, "bad redirect_uri"
        back = {"state": query.get("state", "")}
        if query.get("response_type") != "code":
            back["error"] = "unsupported_response_type"
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            back.update(error="invalid_request", error_description="PKCE S256 is required")
        elif self.refuse_with is not None:
            back.update(error=self.refuse_with, error_description="refused by the test")
        elif self.signed_in is None:
            back["error"] = "login_required"
        else:
            code = secrets.token_urlsafe(32)
            with self._lock:
                self._codes[code] = _Authorization(
                    self.client_id,
                    redirect_uri,
                    query["code_challenge"],
                    query.get("nonce"),
                    dict(self.signed_in),
                )
            back["code"] = code
        separator = "&" if "?" in redirect_uri else "?"
        return 303, redirect_uri + separator + urlencode(back)

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: tokens for a code, once, to the client that holds its verifier."""
        with self._lock:
            # Single use, whatever the outcome: a code that failed once is spent.
            granted = self._codes.pop(form.get("code", ""), None)
        refusal = _refusal(form, granted)
        if refusal is not None or granted is None:
            self.token_refusals.append(refusal or "invalid_grant")
            return 400, {"error": "invalid_grant", "error_description": refusal}
        kid = next(reversed(self.keys))
        now = self.now()
        id_claims = {
            "aud": granted.client_id,
            "sub": granted.claims.get("sub", "anna"),
            "nonce": granted.nonce,
            "roles": None,
            "org": None,
            "country": None,
            "jti": None,
            **self.id_token_claims,
        }
        return 200, {
            "access_token": self.token(kid, now, **granted.claims),
            "token_type": "Bearer",
            "expires_in": 600,
            "id_token": self.token(kid, now, **id_claims),
        }


def _refusal(form: dict[str, str], granted: _Authorization | None) -> str | None:
    if form.get("grant_type") != "authorization_code":
        return "grant_type must be authorization_code"
    if granted is None:
        return "unknown or used code"
    if form.get("client_id") != granted.client_id:
        return "the code was issued to another client"
    if form.get("redirect_uri") != granted.redirect_uri:
        return "redirect_uri differs from the authorization request's"
    verifier = form.get("code_verifier", "")
    digest = hashlib.sha256(verifier.encode()).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    if not verifier or not hmac.compare_digest(computed, granted.challenge):
        return "code_verifier does not match the code_challenge (PKCE)"
    return None


@contextmanager
def running_idp() -> Iterator[IdentityProvider]:
    idp = IdentityProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/authorize" and idp.up:
                status, answer = idp.authorize(dict(parse_qsl(query)))
                if status == 303:
                    self.send_response(303)
                    self.send_header("Location", answer)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._send(status, "text/plain", answer.encode())
                return
            idp.jwks_requests += 1
            if not idp.up or self.path != "/jwks.json":
                self.send_response(503 if not idp.up else 404)
                self.end_headers()
                return
            self._send(200, "application/json", json.dumps(idp.jwks()).encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(min(length, 65_536)).decode()
            if not idp.up or self.path != "/token":
                self.send_response(503 if not idp.up else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, answer = idp.exchange(dict(parse_qsl(body)))
            self._send(status, "application/json", json.dumps(answer).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            """Quiet: the tests assert on counts, not on access logs."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    idp.base = f"http://127.0.0.1:{server.server_address[1]}"
    idp.url = idp.base + "/jwks.json"
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
