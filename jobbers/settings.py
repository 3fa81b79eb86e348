"""All configuration, read from environment variables with the names the reference docs use.

Each field's docstring is its description: ``--help`` of every command lists the variables it
reads from these fields (``jobbers.env_help``), so the help cannot drift from the code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobbers.models.role import DEFAULT_ROLE
from jobbers.state.keys import DEFAULT_PREFIX


class Settings(BaseSettings):
    """One settings tree for every process. Each field is the upper-cased env var of its name."""

    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", case_sensitive=False, use_attribute_docstrings=True
    )

    redis_url: str = "redis://localhost:6379"
    """Redis connection URL: redis://, rediss://, unix://, redis+sentinel://H:26379,H2:26379/SERVICE, redis+cluster://H:7000."""
    redis_cluster: bool = False
    """Treat a redis:// or rediss:// REDIS_URL as one node of a Redis Cluster (same as redis+cluster://)."""
    sql_path: str = "sqlite+aiosqlite:///jobbers.db"
    """SQLAlchemy URL of the queue/role config (async driver: sqlite+aiosqlite:// or postgresql+asyncpg://)."""
    redis_key_prefix: str = DEFAULT_PREFIX
    """Prefix of the global Redis keys; each queue gets the Cluster hash tag {jobbers:QUEUE} made from it."""

    worker_role: str = DEFAULT_ROLE
    """Role whose queues this worker consumes."""
    worker_concurrent_tasks: int = Field(default=5, ge=1)
    """Tasks running at once in this process."""
    worker_ttl: int = Field(default=50, ge=0)
    """Exit after this many tasks (run under a supervisor); 0 = run forever. A burst worker
    (WORKER_BURST) counts it only when it is set."""
    worker_recycle: Literal["exit", "fork"] = "exit"
    """How a worker is recycled after WORKER_TTL tasks (also `--recycle`): `exit` ends the process
    (a supervisor starts the next one); `fork` keeps a parent process that loaded everything once
    and forks a fresh worker for each WORKER_TTL tasks (ignored with WORKER_TTL=0 or in burst mode)."""
    worker_lease_seconds: float = Field(default=30.0, gt=0)
    """Seconds a claimed task's lease lasts; the worker renews it every third of this."""
    worker_shutdown_grace: float = Field(default=30.0, ge=0)
    """Seconds a SIGTERMed worker waits for `continue` tasks (and policy writes) before exiting."""
    worker_refresh_interval: float = Field(default=5.0, gt=0)
    """Seconds between re-reads of the worker's role and queue configuration."""
    worker_burst: bool = False
    """Burst mode (also `--burst`): run what the role's queues hold, including what becomes due
    meanwhile, then exit 0 (for cron). Promotes due tasks and recovers expired leases itself."""
    worker_burst_max_seconds: float = Field(default=0.0, ge=0)
    """A burst worker stops claiming after this many seconds (also `--max-seconds`); 0 = no limit."""

    scheduler_poll_interval: float = Field(default=5.0, gt=0)
    """Longest sleep between scheduler polls (it wakes early for new and due work)."""
    scheduler_batch_size: int = Field(default=1, ge=1)
    """Tasks promoted per script call (it loops while batches are full)."""
    scheduler_role: str = DEFAULT_ROLE
    """Limits the scheduler to this role's queues."""

    audit_max_events: int = Field(default=100_000, ge=100)
    """Events each queue's audit log keeps (GET /audit-log): older ones are trimmed as new ones come,
    in whole blocks, so a little more may be kept. Set it the same on every process."""
    audit_max_age_seconds: float = Field(default=7 * 86400, gt=0)
    """The cleaner removes audit log events older than this (also `jobbers_cleaner --audit-age`);
    a task's own events (GET /tasks/{id}/events) live as long as the task."""

    manager_host: str = "0.0.0.0"
    """Address the REST API listens on."""
    manager_port: int = Field(default=8000, ge=1, le=65535)
    """Port the REST API listens on."""
    manager_max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    """Requests with a larger body are refused with 413."""
    manager_workers: int = Field(default=1, ge=1, le=64)
    """uvicorn worker processes serving the API (one per core is the production setting)."""
    manager_api_token: SecretStr | None = None
    """When set, every route but /healthz, /readyz and /ui/ needs `Authorization: Bearer <token>`."""

    log_level: str = "INFO"
    """Python log level."""
    log_format: Literal["text", "json"] = "text"
    """`text` (one plain line per record) or `json` (one JSON object per line, with the task's id,
    name, queue, attempt and worker id when logged inside its execution)."""
