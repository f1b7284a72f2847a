"""Model parts this party keeps from training jobs (metadata only, never parameters)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from jointly.node.api.deps import Reader, ServicesDep
from jointly.node.api.schemas import Model, ModelDetail
from jointly.node.services.base import Json, JsonList

router = APIRouter(prefix="/models", tags=["models"])

ModelRef = Annotated[
    str, Path(min_length=1, max_length=200, description="The training job's id, a model name, or NAME@vN.")
]


@router.get("", response_model=list[Model], summary="Models, oldest first")
def list_models(services: ServicesDep, _: Reader) -> JsonList:
    return services.models.list()


@router.get("/{ref}", response_model=ModelDetail, summary="One model's metadata")
def get_model(ref: ModelRef, services: ServicesDep, _: Reader) -> Json:
    return services.models.get(ref)
