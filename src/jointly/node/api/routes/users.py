"""The caller (``/api/me``) and the node's API users (admin only)."""

from __future__ import annotations

from fastapi import APIRouter

from jointly.node.api.deps import Reader, ServicesDep, UserManager
from jointly.node.api.schemas import Me, User, UserCreate, UserCreated
from jointly.node.services.base import Json, JsonList

router = APIRouter(tags=["users"])


@router.get("/me", response_model=Me, summary="Who the token belongs to")
def me(principal: Reader) -> Json:
    return {"name": principal.name, "role": principal.role}


@router.get("/users", response_model=list[User], summary="The node's API users")
def list_users(services: ServicesDep, _: UserManager) -> JsonList:
    return services.users.list()


@router.post(
    "/users",
    response_model=UserCreated,
    summary="Add a user; its token is in this answer and nowhere else",
)
def create_user(body: UserCreate, services: ServicesDep, _: UserManager) -> Json:
    return services.users.create(name=body.name, role=body.role)
