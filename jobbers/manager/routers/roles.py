"""Roles: named, ordered lists of queues; a worker drains its role's queues in that order (stored in SQL)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from jobbers.errors import ConfigExistsError, ConfigNotFoundError, DefaultRoleError
from jobbers.manager.deps import ServicesDep
from jobbers.manager.params import CONFLICT, NOT_FOUND, UNAVAILABLE, NamePath, config_links
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import NewRole, RoleQueues
from jobbers.models.role import DEFAULT_ROLE, Role

router = APIRouter(tags=["roles"], route_class=StrictJSONRoute)


@router.get("/roles", responses=UNAVAILABLE)
async def list_roles(services: ServicesDep) -> list[Role]:
    """Every role, by name, each with its queues in order. ``default`` is always there: with no
    queues it consumes every queue."""
    roles = await services.config.list_roles()
    if all(r.name != DEFAULT_ROLE for r in roles):
        roles = sorted([*roles, Role(name=DEFAULT_ROLE)], key=lambda r: r.name)
    return roles


@router.post(
    "/roles",
    status_code=201,
    responses={
        201: {
            "links": config_links(
                GetRole=("/roles/{name}", "get"),
                PutRole=("/roles/{name}", "put"),
                DeleteRole=("/roles/{name}", "delete"),
            )
        },
        **CONFLICT,
        **UNAVAILABLE,
    },
)
async def create_role(body: NewRole, services: ServicesDep) -> Role:
    """Create a role (409 if it exists; 422 if a queue does not exist). Its workers drain its queues
    in the order given (a repeated queue counts once, where it first comes)."""
    role = Role(name=body.name, queues=list(dict.fromkeys(body.queues)))
    if not await services.config.create_role(role):
        raise ConfigExistsError(f"role {body.name!r} exists already; use PUT /roles/{body.name} to change it")
    return role


@router.get("/roles/{name}", responses={**NOT_FOUND, **UNAVAILABLE})
async def get_role(name: NamePath, services: ServicesDep) -> Role:
    """A role and its queues, in the order its workers drain them."""
    role = await services.config.get_role(name)
    if role is None:
        raise ConfigNotFoundError(f"no role {name!r}")
    return role


@router.put(
    "/roles/{name}",
    responses={201: {"model": Role, "description": "the role was created"}, **UNAVAILABLE},
)
async def put_role(name: NamePath, body: RoleQueues, services: ServicesDep, response: Response) -> Role:
    """Replace a role's queue list, creating the role if needed (422 if a queue does not exist).
    Its workers drain the queues in the order given (a repeated queue counts once, where it first
    comes), and pick the change up within ``WORKER_REFRESH_INTERVAL``."""
    role = Role(name=name, queues=list(dict.fromkeys(body.queues)))
    if await services.config.save_role(role):
        response.status_code = 201
    return role


@router.delete("/roles/{name}", status_code=204, responses={**NOT_FOUND, **CONFLICT, **UNAVAILABLE})
async def delete_role(name: NamePath, services: ServicesDep) -> None:
    """Delete a role. ``default`` always exists and cannot be deleted (409): PUT it an empty queue
    list to make it consume every queue again."""
    if name == DEFAULT_ROLE:
        raise DefaultRoleError(
            "the default role always exists and cannot be deleted; "
            'PUT /roles/default {"queues": []} makes it consume every queue again'
        )
    if not await services.config.delete_role(name):
        raise ConfigNotFoundError(f"no role {name!r}")
