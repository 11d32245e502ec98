"""Dependencies: the services, the request context and the verified caller, as Annotated aliases."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

import anyio
from fastapi import Depends, Request
from starlette.types import Scope

from gateway.audit.events import RequestContext, keyed_hash
from gateway.bootstrap import IPNetwork, Services
from gateway.errors import Forbidden, Unauthenticated, WeightgateError
from gateway.identity.principal import Principal, Role
from gateway.identity.tokens import Presentation


def get_services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def``
# dependency in the thread pool, a hop per dependency per request.
async def get_services(request: Request) -> Services:
    return get_services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_context(request: Request, services: ServicesDep) -> RequestContext:
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    peer = request.client.host if request.client else None
    address = client_address(peer, request.headers.get("x-forwarded-for"), services.trusted_proxies)
    request.state.client_address = address  # for the access log
    return RequestContext(request_id=request_id, client_address=address)


ContextDep = Annotated[RequestContext, Depends(get_context)]


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]
) -> str | None:
    """The client's address: the peer, or, behind trusted proxies, who they say connected.

    X-Forwarded-For is read right to left and only through proxies we trust,
    so a client cannot pick its own country by sending the header itself.
    """
    address = peer
    hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    while address is not None and _within(address, trusted) and hops:
        address = hops.pop()
    return address


def _within(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def authenticate_scope(scope: Scope) -> Principal | WeightgateError:
    """The caller a request's headers name, or why not: for ``AuthenticateBeforeBody``.

    Failures are returned, not raised: this runs in middleware, outside the
    error handlers, and the route's auth dependency raises them in turn (a
    refusal audited and 401, an outage 503).
    """
    request = Request(scope)
    try:
        return _verify(request, get_services_of(request))
    except WeightgateError as failure:
        return failure


def authenticate_held(scope: Scope) -> Principal | WeightgateError | None:
    """``authenticate_scope``, when it can answer without waiting on anything; else None.

    A token seen in the last minute is checked in memory, so the event loop
    checks it itself rather than hand the request to a thread and back.
    """
    request = Request(scope)
    services = get_services_of(request)
    try:
        return services.verifier.verify_held(*_credentials(request, services))
    except WeightgateError as failure:
        return failure


async def get_principal(request: Request, services: ServicesDep, context: ContextDep) -> Principal:
    """The verified caller. Every refusal is audited as ``auth.reject`` before the 401 leaves.

    A caller already verified ahead of its body (``AuthenticateBeforeBody``)
    costs nothing more here; verifying or auditing may block, so that runs in
    the thread pool.
    """
    early = getattr(request.state, "authenticated", None)
    if isinstance(early, Principal):
        principal = early
    else:
        principal = await anyio.to_thread.run_sync(
            _verified_or_refused, request, services, context, early
        )
    request.state.subject = principal.subject  # for the access log
    return principal


def _verified_or_refused(
    request: Request, services: Services, context: RequestContext, early: object
) -> Principal:
    try:
        if isinstance(early, WeightgateError):
            raise early
        return _verify(request, services)
    except Unauthenticated as refusal:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        record_refusal(services, context, request, refusal, token.strip())
        raise


def record_refusal(
    services: Services,
    context: RequestContext,
    request: Request,
    refusal: Unauthenticated,
    token: str,
) -> None:
    """Audit a refused token as ``auth.reject``: by the API, and by the console's sign-in."""
    services.rejections.record(
        context,
        refusal.message,
        {
            "method": request.method,
            "path": request.url.path,
            "token": keyed_hash(services.keys.audit_hmac, token) if token else None,
        },
    )


def _verify(request: Request, services: Services) -> Principal:
    return services.verifier.verify(*_credentials(request, services))


def _credentials(request: Request, services: Services) -> tuple[str, Presentation]:
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthenticated("missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("bearer", "dpop") or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <token>' or 'DPoP <token>'")
    # The URL a DPoP proof signs is the public one clients were given, not
    # whatever host name a proxy in front of us used.
    public_url = services.settings.url.rstrip("/") + request.url.path
    presented = Presentation(
        scheme=scheme.lower(),
        dpop_proof=request.headers.get("dpop"),
        method=request.method,
        url=public_url,
    )
    return token.strip(), presented


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_role(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A route guard: the caller must hold one of ``roles``."""

    async def guard(principal: PrincipalDep) -> Principal:
        if not principal.has_any(*roles):
            names = " or ".join(role.value for role in roles)
            raise Forbidden(f"this needs the {names} role")
        return principal

    return guard


SecurityReader = Annotated[Principal, Depends(require_role(Role.SECURITY, Role.ADMIN))]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
