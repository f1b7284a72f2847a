"""``GET /api/health``: the one route that needs no token (for load balancers and ``jointly`` clients)."""

from __future__ import annotations

from fastapi import APIRouter

from jointly.node.api.deps import ServicesDep
from jointly.node.api.schemas import Health
from jointly.node.services.base import Json

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Is the node up, and which party is it")
def health(services: ServicesDep) -> Json:
    return services.health()
