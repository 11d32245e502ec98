"""A small identity provider on loopback: a JWKS that rotates, tokens, and outages."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "https://idp.test"
AUDIENCE = "weightgate"
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | Ed25519PrivateKey


class IdentityProvider:
    def __init__(self) -> None:
        self.keys: dict[str, tuple[SigningKey, str]] = {}
        self.up = True
        self.jwks_requests = 0
        self.url = ""
        self._counter = 0

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


@contextmanager
def running_idp() -> Iterator[IdentityProvider]:
    idp = IdentityProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            idp.jwks_requests += 1
            if not idp.up or self.path != "/jwks.json":
                self.send_response(503 if not idp.up else 404)
                self.end_headers()
                return
            body = json.dumps(idp.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            """Quiet: the tests assert on counts, not on access logs."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    idp.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
