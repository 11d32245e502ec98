"""Dependencies: the services, the request context and the verified caller, as Annotated aliases."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from gateway.audit.events import RequestContext
from gateway.bootstrap import Services
from gateway.errors import Forbidden, Unauthenticated
from gateway.identity.principal import Principal, Role


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_context(request: Request) -> RequestContext:
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    client = request.client.host if request.client else None
    return RequestContext(request_id=request_id, client_address=client)


ServicesDep = Annotated[Services, Depends(get_services)]
ContextDep = Annotated[RequestContext, Depends(get_context)]


def get_principal(request: Request, services: ServicesDep) -> Principal:
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthenticated("missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <token>'")
    return services.verifier.verify(token.strip())


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_role(*roles: Role) -> Callable[[Principal], Principal]:
    """A route guard: the caller must hold one of ``roles``."""

    def guard(principal: PrincipalDep) -> Principal:
        if not principal.has_any(*roles):
            names = " or ".join(role.value for role in roles)
            raise Forbidden(f"this needs the {names} role")
        return principal

    return guard


SecurityReader = Annotated[Principal, Depends(require_role(Role.SECURITY, Role.ADMIN))]
