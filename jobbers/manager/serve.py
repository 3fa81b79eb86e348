"""Running the manager under uvicorn: one process, or ``MANAGER_WORKERS`` worker processes.

With several workers uvicorn starts each one fresh (spawn) and builds its app from an import
string, so a worker process cannot inherit the task module the command line loaded: the parent
passes the modules it loaded in ``TASK_MODULES_ENV``, and ``worker_app`` loads them again, sets up
logging and telemetry, and builds the app from the same settings (the same environment).
Every worker process shares the one listening socket; the kernel spreads connections over them.
"""

from __future__ import annotations

import atexit
import json
import os

from fastapi import FastAPI

from jobbers.logs import configure_logging, uvicorn_log_config
from jobbers.manager.app import create_app
from jobbers.registry import load_task_module, loaded_task_modules
from jobbers.settings import Settings
from jobbers.telemetry import setup_telemetry

#: How the manager's parent process hands its task modules to its worker processes.
TASK_MODULES_ENV = "JOBBERS_MANAGER_TASK_MODULES"


def serve(settings: Settings) -> None:
    """Serve the API on ``MANAGER_HOST``:``MANAGER_PORT`` until stopped (SIGINT/SIGTERM)."""
    import uvicorn

    host, port, log_level = settings.manager_host, settings.manager_port, settings.log_level.lower()
    log_config = uvicorn_log_config(settings.log_format)
    if settings.manager_workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, log_config=log_config)
        return
    os.environ[TASK_MODULES_ENV] = json.dumps(loaded_task_modules())
    uvicorn.run(
        f"{__name__}:worker_app",
        factory=True,
        workers=settings.manager_workers,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config,
    )


def worker_app() -> FastAPI:
    """The app of one worker process of a ``MANAGER_WORKERS`` > 1 manager (a uvicorn factory)."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    for target in json.loads(os.environ.get(TASK_MODULES_ENV, "[]")):
        load_task_module(target)
    atexit.register(setup_telemetry("jobbers-manager").shutdown)
    return create_app(settings)
