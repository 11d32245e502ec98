"""Bearer token verification. Every check is spelled out; any failure is Unauthenticated."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from gateway.clock import Clock
from gateway.errors import InvalidInput, TokenExpired, Unauthenticated
from gateway.identity.dpop import verify_proof
from gateway.identity.issuers import TrustedIssuer
from gateway.identity.principal import Principal, Role
from gateway.identity.replay import ReplayGuard
from gateway.names import check_org_id, is_printable
from gateway.policy.countries import country_code

MAX_TOKEN_BYTES = 8192
MAX_LEEWAY = timedelta(seconds=60)
_CACHE_FOR = timedelta(seconds=60)
_CACHE_ENTRIES = 10_000
# expiry, claims, issuer, kid, and the key object that verified them
_Cached = tuple[datetime, dict[str, Any], TrustedIssuer, str, jwt.PyJWK]
# Headers that tell a verifier to fetch or trust a key named by the token
# itself; following them lets the token choose its own verifier.
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
# Bounds on what a token may claim. Claims are stored, logged and shown, so a
# value that does not fit a column or a terminal is refused here, at the door,
# rather than failing (or spoofing) whatever reads it later.
MAX_SUBJECT_CHARS = 256
MAX_JTI_CHARS = 256
MAX_ROLES = 16
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z: the end of every calendar we use


@dataclass(frozen=True)
class Presentation:
    """How a token arrived: its scheme, any DPoP proof, and the request it must match."""

    scheme: str = "bearer"
    dpop_proof: str | None = None
    method: str = "GET"
    url: str = ""


class TokenVerifier:
    def __init__(
        self,
        issuers: Iterable[TrustedIssuer],
        clock: Clock,
        leeway: timedelta = timedelta(seconds=30),
        replay: ReplayGuard | None = None,
    ) -> None:
        if leeway > MAX_LEEWAY:
            raise InvalidInput("token leeway may be at most 60 seconds")
        self._issuers = {issuer.issuer: issuer for issuer in issuers}
        self._clock = clock
        self._leeway = leeway
        self._replay = replay
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def issuers(self) -> tuple[TrustedIssuer, ...]:
        """The issuers trusted here: the console offers sign-in through those with a client."""
        return tuple(self._issuers.values())

    def verify(self, token: str, presented: Presentation | None = None) -> Principal:
        """The principal a token names, after every check; any failure is Unauthenticated."""
        presented = presented or Presentation()
        if len(token.encode()) > MAX_TOKEN_BYTES:
            raise Unauthenticated("token is larger than 8 KiB")
        payload, issuer = self._verified_claims(token)
        return self._checked(token, payload, issuer, presented)

    def verify_held(self, token: str, presented: Presentation) -> Principal | None:
        """``verify``, when nothing it needs would wait; None when something would.

        The common case, a client's token seen in the last minute, needs no
        signature check, no key fetch and no record of a proof or a single use:
        that is CPU work the event loop can do without handing the request to
        a thread. A failed check raises as ``verify`` does.
        """
        if len(token.encode()) > MAX_TOKEN_BYTES:
            return None
        held = self._remembered(_digest(token), lambda issuer, kid: issuer.jwks.held_key(kid))
        if held is None:
            return None
        payload, issuer = held
        if issuer.one_time_tokens or payload.get("cnf") is not None:
            return None  # a proof or a use to record in the database
        return self._checked(token, payload, issuer, presented)

    def _checked(
        self, token: str, payload: dict[str, Any], issuer: TrustedIssuer, presented: Presentation
    ) -> Principal:
        self._check_times(payload, issuer)
        principal = self._principal(payload, issuer)
        self._check_possession(token, payload, issuer, presented)
        self._check_single_use(payload, issuer)
        return principal

    def _verified_claims(self, token: str) -> tuple[dict[str, Any], TrustedIssuer]:
        """Signature and claims, remembered briefly per token.

        A client reuses its token for every request, and checking a signature
        costs more than the rest of a grant. A remembered token is used only
        while its issuer still publishes the very key object that verified it,
        so a key withdrawn from a JWKS stops working as soon as the JWKS is
        refreshed; times, possession and single use are checked every time.
        """
        digest = _digest(token)
        remembered = self._remembered(digest, lambda issuer, kid: issuer.jwks.key(kid))
        if remembered is not None:
            return remembered
        payload, issuer, kid, key = self._check_signature(token)
        with self._cache_lock:
            self._cache[digest] = (
                self._clock.now() + _CACHE_FOR,
                payload,
                issuer,
                kid,
                key,
            )
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return payload, issuer

    def _remembered(
        self, digest: bytes, key_of: Callable[[TrustedIssuer, str], jwt.PyJWK | None]
    ) -> tuple[dict[str, Any], TrustedIssuer] | None:
        with self._cache_lock:
            cached = self._cache.get(digest)
        if cached is None:
            return None
        until, payload, issuer, kid, key = cached
        if until > self._clock.now() and key_of(issuer, kid) is key:
            return payload, issuer
        return None

    def _check_signature(self, token: str) -> tuple[dict[str, Any], TrustedIssuer, str, jwt.PyJWK]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("token is malformed") from None
        issuer = self._issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise Unauthenticated("token issuer is not trusted")
        required = ["exp", "iat", "iss", "aud", issuer.claims.subject]
        return signed_claims(token, issuer, audience=issuer.audience, require=required)

    def _check_possession(
        self, token: str, payload: dict[str, Any], issuer: TrustedIssuer, presented: Presentation
    ) -> None:
        cnf = payload.get("cnf")
        bound_to = cnf.get("jkt") if isinstance(cnf, dict) else None
        if bound_to is None:
            if issuer.require_dpop:
                raise Unauthenticated("this issuer's tokens must be DPoP-bound (cnf.jkt)")
            if presented.scheme != "bearer":
                raise Unauthenticated("only a DPoP-bound token may use the DPoP scheme")
            return
        # A bound token is never accepted as a plain bearer token: that is the
        # whole point of binding it.
        if presented.scheme != "dpop" or presented.dpop_proof is None:
            raise Unauthenticated("this token is DPoP-bound: send it as 'DPoP' with a proof")
        if self._replay is None:
            raise Unauthenticated("DPoP is not available on this gateway")
        verify_proof(
            presented.dpop_proof,
            method=presented.method,
            url=presented.url,
            access_token=token,
            bound_to=str(bound_to),
            clock=self._clock,
            replay=self._replay,
            leeway=self._leeway,
        )

    def _check_single_use(self, payload: dict[str, Any], issuer: TrustedIssuer) -> None:
        if not issuer.one_time_tokens:
            return
        jti = payload.get("jti")
        if not isinstance(jti, str) or not jti:
            raise Unauthenticated("this issuer's tokens are one-time and need a jti")
        if self._replay is None:
            raise Unauthenticated("one-time tokens are not available on this gateway")
        expires = datetime.fromtimestamp(payload["exp"], tz=UTC) + self._leeway
        if not self._replay.first_use(f"token:{issuer.issuer}", jti, expires):
            raise Unauthenticated("this one-time token was already used")

    def _check_times(self, payload: dict[str, Any], issuer: TrustedIssuer) -> None:
        now = self._clock.now().timestamp()
        leeway = self._leeway.total_seconds()
        for claim in ("exp", "iat", "nbf"):
            if claim not in payload:
                continue
            value = payload[claim]
            if not isinstance(value, int) or isinstance(value, bool):
                raise Unauthenticated(f"token {claim} is not an integer")
            if not 0 <= value <= MAX_TIMESTAMP:
                raise Unauthenticated(f"token {claim} is not a time")
        if payload["exp"] <= now - leeway:
            raise TokenExpired("token has expired")
        if payload.get("nbf", payload["iat"]) > now + leeway:
            raise Unauthenticated("token is not valid yet")
        # A token without an upper bound on its life is a standing credential;
        # each issuer says how long its tokens may live.
        if payload["exp"] - payload["iat"] > issuer.max_lifetime.total_seconds():
            raise Unauthenticated(
                f"token lifetime exceeds the {issuer.max_lifetime.total_seconds():.0f} s "
                "this issuer allows"
            )

    def _principal(self, payload: dict[str, Any], issuer: TrustedIssuer) -> Principal:
        names = issuer.claims
        subject = _text_claim(payload, names.subject)
        if len(subject) > MAX_SUBJECT_CHARS or not is_printable(subject):
            raise Unauthenticated(
                f"token {names.subject!r} claim must be 1-{MAX_SUBJECT_CHARS} printable characters"
            )
        org = _text_claim(payload, names.org)
        try:
            check_org_id(org)
        except InvalidInput:
            raise Unauthenticated(
                f"token {names.org!r} claim is not an organisation id "
                "(1-64 letters, digits, '.', '_' or '-')"
            ) from None
        country = _text_claim(payload, names.country)
        try:
            location = country_code(country)
        except InvalidInput:
            raise Unauthenticated(f"token country {country!r} is not an ISO 3166-1 code") from None
        raw_roles = payload.get(names.roles, [])
        if not isinstance(raw_roles, list) or len(raw_roles) > MAX_ROLES:
            raise Unauthenticated(
                f"token {names.roles!r} claim must be a list of at most {MAX_ROLES}"
            )
        roles = frozenset(Role(r) for r in raw_roles if r in Role.__members__.values())
        jti = payload.get("jti")
        if jti is not None and (
            not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS or not is_printable(jti)
        ):
            raise Unauthenticated(f"token jti must be 1-{MAX_JTI_CHARS} printable characters")
        return Principal(
            subject=str(subject),
            org=org,
            country=location,
            roles=roles,
            token_id=str(jti) if jti is not None else None,
            issuer=issuer.issuer,
        )


def signed_claims(
    token: str, issuer: TrustedIssuer, *, audience: str, require: list[str], what: str = "token"
) -> tuple[dict[str, Any], TrustedIssuer, str, jwt.PyJWK]:
    """``token``'s claims once one of ``issuer``'s keys verifies it, with the key that did.

    The one signature check for access tokens and the console's ID tokens:
    no key the token names itself, only the issuer's algorithms, its own
    audience and issuer. Times are the caller's to check, against the
    injected clock, so tests move time instead of sleeping.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated(f"{what} is malformed") from None
    if _FORBIDDEN_HEADERS.intersection(header):
        raise Unauthenticated(f"{what} names its own key (jku/x5u/jwk/x5c); refused")
    algorithm = header.get("alg")
    if algorithm not in issuer.algorithms:
        raise Unauthenticated(f"{what} algorithm {algorithm!r} is not allowed for this issuer")
    kid = str(header.get("kid"))
    key = issuer.jwks.key(kid)
    if key is None:
        raise Unauthenticated(f"{what} key id is unknown to its issuer")
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer.issuer,
            options={
                "require": require,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"{what} rejected: {exc}") from None
    return payload, issuer, kid, key


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _text_claim(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise Unauthenticated(f"token lacks the {name!r} claim")
    return value
