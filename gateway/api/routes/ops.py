"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from gateway import metrics
from gateway.api.deps import ServicesDep
from gateway.api.problems import responses
from gateway.api.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Health:
    """Liveness: answered on the event loop itself, never queued behind a dependency's call."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=responses(503))
def readyz(services: ServicesDep) -> dict[str, str]:
    """Readiness: the database, storage, keystore, audit appends and checkpoints work.

    Otherwise a 503 problem whose ``failed`` names each component that is down, and why.
    """
    return services.check_ready()


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def prometheus_metrics() -> Response:
    """Prometheus metrics: with ``serve --workers N``, every worker's added up."""
    body, media_type = metrics.exposition()
    return Response(body, media_type=media_type)
