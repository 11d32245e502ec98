"""The routes of the contract, by area. Each reads as: who may call it, what it asks a service."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.routes import admin, audit, catalog, grants, ops

router = APIRouter()
for area in (grants, catalog, admin, audit, ops):
    router.include_router(area.router)
