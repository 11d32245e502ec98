"""DPoP (RFC 9449): proof that the caller holds the key a token is bound to.

A DPoP-bound token carries ``cnf.jkt``, the thumbprint of the client's public
key. Each request carries a fresh proof, a JWT signed by that key over the
method, the URL, the time and the token's hash. A stolen token is useless
without the key, and a stolen proof is useless for any other request, after
a minute, or a second time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.clock import Clock
from gateway.errors import InvalidInput, Unauthenticated
from gateway.identity.issuers import ASYMMETRIC_ALGORITHMS

if TYPE_CHECKING:
    from gateway.identity.replay import ReplayGuard

PROOF_LIFETIME = timedelta(seconds=60)
MAX_PROOF_BYTES = 4096
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), the value of ``cnf.jkt``."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise Unauthenticated("DPoP key is not a supported public JWK")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def token_hash(access_token: str) -> str:
    return b64url(hashlib.sha256(access_token.encode()).digest())


def normalise_htu(url: str) -> str:
    """Scheme, host and path only: RFC 9449 compares ``htu`` without query or fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str,
    bound_to: str,
    clock: Clock,
    replay: ReplayGuard,
    leeway: timedelta,
) -> None:
    """Raise Unauthenticated unless ``proof`` is a fresh, first-use proof for this exact request."""
    if len(proof) > MAX_PROOF_BYTES:
        raise Unauthenticated("DPoP proof is too large")
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError:
        raise Unauthenticated("DPoP proof is malformed") from None
    if header.get("typ") != "dpop+jwt":
        raise Unauthenticated("DPoP proof must have typ dpop+jwt")
    algorithm = header.get("alg")
    if algorithm not in ASYMMETRIC_ALGORITHMS:
        raise Unauthenticated(f"DPoP proof algorithm {algorithm!r} is not allowed")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or "d" in jwk or "k" in jwk:
        raise Unauthenticated("DPoP proof must carry the public key it is signed with")
    if thumbprint(jwk) != bound_to:
        raise Unauthenticated("DPoP proof is signed by a key the token is not bound to")
    try:
        key = jwt.PyJWK(jwk, algorithm=algorithm)
        claims: dict[str, Any] = jwt.decode(
            proof,
            key,
            algorithms=[algorithm],
            options={
                "require": ["jti", "htm", "htu", "iat", "ath"],
                "verify_aud": False,
                "verify_iat": False,
                "verify_exp": False,
                "verify_nbf": False,
            },
        )
    except (jwt.PyJWTError, jwt.PyJWKError):
        raise Unauthenticated("DPoP proof signature is invalid") from None
    if claims["htm"] != method.upper() or normalise_htu(str(claims["htu"])) != normalise_htu(url):
        raise Unauthenticated("DPoP proof is for another method or URL")
    if claims["ath"] != token_hash(access_token):
        raise Unauthenticated("DPoP proof is for another access token")
    iat = claims["iat"]
    if not isinstance(iat, int) or not isinstance(claims["jti"], str):
        raise Unauthenticated("DPoP proof iat or jti is malformed")
    issued = datetime.fromtimestamp(iat, tz=clock.now().tzinfo)
    now = clock.now()
    if issued > now + leeway or issued < now - PROOF_LIFETIME - leeway:
        raise Unauthenticated("DPoP proof is not fresh")
    if not replay.first_use("dpop", claims["jti"], issued + PROOF_LIFETIME + leeway):
        raise Unauthenticated("DPoP proof was already used")


ProofKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def make_proof(
    private_key: ProofKey, *, method: str, url: str, access_token: str, now: datetime
) -> str:
    """A client-side proof for one request (what ``weightgate fetch`` sends)."""
    algorithm = "EdDSA" if isinstance(private_key, Ed25519PrivateKey) else "ES256"
    jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(private_key.public_key()))
    claims = {
        "jti": uuid.uuid4().hex,
        "htm": method.upper(),
        "htu": normalise_htu(url),
        "iat": int(now.timestamp()),
        "ath": token_hash(access_token),
    }
    return jwt.encode(
        claims, private_key, algorithm=algorithm, headers={"typ": "dpop+jwt", "jwk": jwk}
    )


def load_proof_key(path: Path) -> ProofKey:
    """A DPoP key from a PEM file: Ed25519, or EC P-256."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInput(f"cannot load DPoP key {path}: {exc}") from None
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise InvalidInput(f"DPoP key {path} must be Ed25519 or EC P-256")


def key_thumbprint(key: ProofKey) -> str:
    """The ``cnf.jkt`` a token bound to ``key`` carries."""
    algorithm = "EdDSA" if isinstance(key, Ed25519PrivateKey) else "ES256"
    return thumbprint(json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key())))
