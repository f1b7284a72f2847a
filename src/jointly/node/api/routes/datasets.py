"""Tables registered on this node: their paths and schemas (never their rows)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from jointly.node.api.deps import DatasetManager, Reader, ServicesDep
from jointly.node.api.schemas import DATASET_NAME, Dataset, DatasetCreate
from jointly.node.services.base import Json, JsonList

router = APIRouter(prefix="/datasets", tags=["datasets"])

DatasetName = Annotated[str, Path(pattern=DATASET_NAME, description="A registered dataset's name.")]


@router.get("", response_model=list[Dataset], summary="Registered datasets")
def list_datasets(services: ServicesDep, _: Reader) -> JsonList:
    return services.datasets.list()


@router.post(
    "",
    response_model=Dataset,
    summary="Register a CSV or Parquet file (its schema is read and checked; 400 if unusable)",
)
def add_dataset(body: DatasetCreate, services: ServicesDep, principal: DatasetManager) -> Json:
    return services.datasets.add(
        name=body.name, path=body.path, id_column=body.id_column, description=body.description, by=principal
    )


@router.get("/{name}", response_model=Dataset, summary="One dataset's schema")
def get_dataset(name: DatasetName, services: ServicesDep, _: Reader) -> Json:
    return services.datasets.get(name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Forget a dataset (the file stays)")
def remove_dataset(name: DatasetName, services: ServicesDep, principal: DatasetManager) -> None:
    services.datasets.remove(name, by=principal)
