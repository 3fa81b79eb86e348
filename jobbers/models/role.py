"""Roles: named, ordered lists of queues that a worker consumes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from jobbers.models.queue_config import NAME_PATTERN

#: The role a worker or scheduler takes unless told; it exists implicitly.
DEFAULT_ROLE = "default"


class Role(BaseModel):
    """A role. Its workers drain ``queues`` in order: a later queue gets claims only while the ones
    before it have no ready work they may start. The ``default`` role with no queues assigned
    consumes every queue, rotating among them."""

    name: str = Field(pattern=NAME_PATTERN)
    queues: list[str] = Field(default_factory=list, description="in the order its workers drain them")


def queues_for_role(role: Role | None, all_queues: list[str]) -> list[str]:
    """The queues a worker of ``role`` consumes, in the role's order, given every queue that exists."""
    if role is None:
        return []
    if role.name == DEFAULT_ROLE and not role.queues:
        return sorted(all_queues)
    existing = set(all_queues)
    return [q for q in role.queues if q in existing]
