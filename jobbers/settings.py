"""All configuration, read from environment variables with the names the reference docs use."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobbers.models.role import DEFAULT_ROLE
from jobbers.state.keys import DEFAULT_PREFIX


class Settings(BaseSettings):
    """One settings tree for every process. Each field is the upper-cased env var of its name."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    redis_url: str = "redis://localhost:6379"
    sql_path: str = "sqlite+aiosqlite:///jobbers.db"
    #: Prefix of every Redis key (a Redis Cluster hash tag, so all keys share one slot).
    redis_key_prefix: str = DEFAULT_PREFIX

    worker_role: str = DEFAULT_ROLE
    worker_concurrent_tasks: int = Field(default=5, ge=1)
    worker_ttl: int = Field(default=50, ge=0)
    #: Seconds a claimed task's lease lasts; the worker renews it every third of this.
    worker_lease_seconds: float = Field(default=30.0, gt=0)
    #: Seconds a SIGTERMed worker waits for ``continue`` tasks (and policy writes) before exiting.
    worker_shutdown_grace: float = Field(default=30.0, ge=0)
    #: Seconds between re-reads of the worker's role and queue configuration.
    worker_refresh_interval: float = Field(default=5.0, gt=0)

    scheduler_poll_interval: float = Field(default=5.0, gt=0)
    scheduler_batch_size: int = Field(default=1, ge=1)
    scheduler_role: str = DEFAULT_ROLE

    manager_host: str = "0.0.0.0"
    manager_port: int = Field(default=8000, ge=1, le=65535)
    #: Requests with a larger body are refused with 413.
    manager_max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    #: uvicorn worker processes serving the API (one per core is the production setting).
    manager_workers: int = Field(default=1, ge=1, le=64)
    #: When set, every route but /healthz and /readyz needs ``Authorization: Bearer <token>``.
    manager_api_token: SecretStr | None = None

    log_level: str = "INFO"
    #: ``text`` (one plain line per record) or ``json`` (one JSON object per line, with the task's
    #: id, name, queue, attempt and worker id when logged inside its execution).
    log_format: Literal["text", "json"] = "text"
