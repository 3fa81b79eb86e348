"""``@register_task`` and lookup of task functions by (name, version)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import importlib
import importlib.util
import inspect
import string
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from jobbers.errors import InvalidParamsError, TaskModuleError, TaskRegistrationError, UnknownTaskError
from jobbers.models.task import MAX_PRIORITY, MIN_PRIORITY, is_priority
from jobbers.models.task_config import (
    BackoffStrategy,
    DeadLetterPolicy,
    OnConflict,
    ShutdownPolicy,
    TaskConfig,
)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_registry: dict[tuple[str, int], TaskConfig] = {}
#: A formatted concurrency key longer than this is refused (it names Redis keys).
MAX_CONCURRENCY_KEY_LENGTH = 500
#: Every target ``load_task_module`` imported, in order (a manager's worker processes load them too).
_loaded_modules: list[str] = []


def register_task(
    name: str,
    version: int = 1,
    *,
    max_retries: int = 3,
    retry_delay: float = 5.0,
    backoff_strategy: BackoffStrategy | str = BackoffStrategy.EXPONENTIAL,
    max_retry_delay: float = 3600.0,
    dead_letter_policy: DeadLetterPolicy | str = DeadLetterPolicy.NONE,
    max_heartbeat_interval: dt.timedelta | float | None = None,
    timeout: float | None = None,
    expected_exceptions: tuple[type[BaseException], ...] | list[type[BaseException]] = (),
    on_shutdown: ShutdownPolicy | str = ShutdownPolicy.STOP,
    max_stalls: int = 1,
    priority: int = 0,
    concurrency_key: str | None = None,
    concurrency_limit: int = 1,
    concurrency_duration: float = 300.0,
    on_conflict: OnConflict | str = OnConflict.BLOCK,
    schedule: str | float | None = None,
    schedule_timezone: str | None = None,
) -> Callable[[F], F]:
    """Register an ``async def`` as task ``name`` at ``version``; returns the function unchanged.

    ``schedule`` (a cron expression, or an interval in seconds) also declares a recurring entry
    keyed by the task's name that submits it without params (``jobbers.recurring`` declares
    entries with params, or several per task).

    Raises ``TaskRegistrationError`` if (name, version) is already taken by another function, or
    if the function is not a coroutine function.
    """
    if isinstance(max_heartbeat_interval, int | float):
        max_heartbeat_interval = dt.timedelta(seconds=max_heartbeat_interval)
    if max_retries < 0 or retry_delay < 0 or max_retry_delay < 0 or max_stalls < 0:
        raise TaskRegistrationError(f"task {name!r}: retry and stall options must not be negative")
    if timeout is not None and timeout <= 0:
        raise TaskRegistrationError(f"task {name!r}: timeout must be positive")
    if not is_priority(priority):
        raise TaskRegistrationError(
            f"task {name!r}: priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}"
        )
    if concurrency_key is not None:
        _check_concurrency(name, concurrency_key, concurrency_limit, concurrency_duration, on_conflict)

    def decorate(fn: F) -> F:
        if not inspect.iscoroutinefunction(cast(Any, fn)):
            raise TaskRegistrationError(f"task {name!r} must be an 'async def' function")
        config = TaskConfig(
            name=name,
            version=version,
            function=fn,
            max_retries=max_retries,
            retry_delay=retry_delay,
            backoff_strategy=BackoffStrategy(backoff_strategy),
            max_retry_delay=max_retry_delay,
            dead_letter_policy=DeadLetterPolicy(dead_letter_policy),
            max_heartbeat_interval=max_heartbeat_interval,
            timeout=timeout,
            expected_exceptions=tuple(expected_exceptions),
            on_shutdown=ShutdownPolicy(on_shutdown),
            max_stalls=max_stalls,
            priority=priority,
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
            concurrency_duration=float(concurrency_duration),
            on_conflict=OnConflict(on_conflict),
        )
        existing = _registry.get((name, version))
        if existing is not None and not _same_function(existing.function, fn):
            raise TaskRegistrationError(
                f"task {name!r} version {version} is already registered by "
                f"{existing.function.__module__}.{existing.function.__qualname__}"
            )
        _registry[(name, version)] = config

        def step(**params: Any) -> Any:
            """A one-node workflow running this task with ``params`` (``jobbers.workflows``)."""
            from jobbers.workflows import signature

            return signature(name, version, **params)

        fn.s = step  # type: ignore[attr-defined]
        if schedule is not None:
            from jobbers.recurring_entries import recurring

            every = float(schedule) if isinstance(schedule, int | float) else None
            cron = schedule if isinstance(schedule, str) else None
            recurring(name, name, cron=cron, every=every, timezone=schedule_timezone, version=version)
        return fn

    return decorate


def register_external_task(
    name: str,
    version: int = 1,
    *,
    params: Sequence[str] | Mapping[str, Any] = (),
    any_params: bool = False,
    max_retries: int = 3,
    retry_delay: float = 5.0,
    backoff_strategy: BackoffStrategy | str = BackoffStrategy.EXPONENTIAL,
    max_retry_delay: float = 3600.0,
    dead_letter_policy: DeadLetterPolicy | str = DeadLetterPolicy.NONE,
    max_stalls: int = 1,
    priority: int = 0,
) -> TaskConfig:
    """Declare task ``name`` at ``version`` that no Jobbers worker runs: an outside process (an
    agent, a service in another language) claims it over HTTP and reports its outcome.

    ``params`` are the parameters a submit must fit, as for a registered function: a sequence of
    names (each required) or a mapping of name to default (``REQUIRED`` for one without);
    ``any_params`` also accepts names not listed. The manager validates submits against them as
    usual. Its tasks wait in their queue's *external* ready set, which no worker's claim reads.
    ``max_retries`` and the backoff apply to a retryable ``fail``; ``max_stalls`` to an expired
    claim; ``dead_letter_policy`` to the final failure. Returns the registered config.

    Raises ``TaskRegistrationError`` when (name, version) is taken by a different declaration or
    a task function, or for an invalid option or parameter name.
    """
    if max_retries < 0 or retry_delay < 0 or max_retry_delay < 0 or max_stalls < 0:
        raise TaskRegistrationError(f"task {name!r}: retry and stall options must not be negative")
    if not is_priority(priority):
        raise TaskRegistrationError(
            f"task {name!r}: priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}"
        )
    if isinstance(params, str):
        raise TaskRegistrationError(f"task {name!r}: params is a list of names, not one string")
    declared = dict(params) if isinstance(params, Mapping) else dict.fromkeys(params, REQUIRED)
    for param in declared:
        if not isinstance(param, str) or not param.isidentifier():
            raise TaskRegistrationError(f"task {name!r}: parameter name {param!r} is not an identifier")
    config = TaskConfig(
        name=name,
        version=version,
        function=_external_function(name, version, declared, any_params),
        max_retries=max_retries,
        retry_delay=retry_delay,
        backoff_strategy=BackoffStrategy(backoff_strategy),
        max_retry_delay=max_retry_delay,
        dead_letter_policy=DeadLetterPolicy(dead_letter_policy),
        max_stalls=max_stalls,
        priority=priority,
        external=True,
    )
    existing = _registry.get((name, version))
    if existing is not None and not (existing.external and _same_declaration(existing, config)):
        raise TaskRegistrationError(f"task {name!r} version {version} is already registered")
    _registry[(name, version)] = config
    return config


class _Required:
    """The default of an external task's parameter that has none (``REQUIRED``)."""

    def __repr__(self) -> str:
        return "REQUIRED"


#: In ``register_external_task(params={...})``: a parameter without a default.
REQUIRED: Any = _Required()


def _external_function(
    name: str, version: int, declared: Mapping[str, Any], any_params: bool
) -> Callable[..., Awaitable[Any]]:
    """A stand-in function with the declared keyword parameters (what submits are validated
    against and ``/task-types`` lists); calling it raises: no worker runs an external task."""

    async def external_task(**params: Any) -> Any:
        raise TaskRegistrationError(f"task {name!r} version {version} is external: no worker runs it")

    kinds = [
        inspect.Parameter(
            p,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if default is REQUIRED else default,
        )
        for p, default in declared.items()
    ]
    if any_params:
        kinds.append(inspect.Parameter("params", inspect.Parameter.VAR_KEYWORD))
    external_task.__signature__ = inspect.Signature(kinds)  # type: ignore[attr-defined]
    external_task.__qualname__ = f"external_task[{name}:{version}]"
    return external_task


def _same_declaration(a: TaskConfig, b: TaskConfig) -> bool:
    # A module imported twice declares the same thing again: equal but for the stand-in function.
    return dataclasses.replace(a, function=b.function) == b and str(inspect.signature(a.function)) == str(
        inspect.signature(b.function)
    )


def runnable_tasks() -> list[TaskConfig]:
    """Every registered task a worker runs (those with a function: not external), sorted."""
    return [c for c in registered_tasks() if not c.external]


def _check_concurrency(name: str, key: str, limit: int, duration: float, on_conflict: object) -> None:
    try:
        concurrency_key_fields(key)
    except ValueError as exc:
        raise TaskRegistrationError(f"task {name!r}: concurrency_key {key!r}: {exc}") from None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise TaskRegistrationError(f"task {name!r}: concurrency_limit must be an integer of at least 1")
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not duration > 0:
        raise TaskRegistrationError(
            f"task {name!r}: concurrency_duration must be a positive number of seconds"
        )
    if on_conflict not in {c.value for c in OnConflict}:
        raise TaskRegistrationError(f"task {name!r}: on_conflict must be 'block' or 'discard'")


def concurrency_key_fields(template: str) -> list[str]:
    """The param names a concurrency key template uses (``"account:{account_id}"`` -> ``["account_id"]``);
    ``ValueError`` for a template that is not ``{name}`` fields and text."""
    if not template:
        raise ValueError("must not be empty")
    names = []
    for _text, field_name, spec, conversion in string.Formatter().parse(template):
        if field_name is None:
            continue
        if not field_name.isidentifier() or spec or conversion:
            raise ValueError(f"{{{field_name}}} must name a param, as {{name}}")
        names.append(field_name)
    return names


def format_concurrency_key(config: TaskConfig, params: Mapping[str, Any]) -> str | None:
    """The concurrency key of a task of ``config`` with ``params`` (None when it has none);
    ``InvalidParamsError`` names a param the key needs that ``params`` lacks, or a key too long."""
    if config.concurrency_key is None:
        return None
    names = concurrency_key_fields(config.concurrency_key)
    missing = [n for n in names if n not in params]
    if missing:
        raise InvalidParamsError(
            f"task {config.name!r} needs param(s) {', '.join(missing)} for its concurrency key "
            f"{config.concurrency_key!r}"
        )
    key = config.concurrency_key.format_map({n: params[n] for n in names})
    if len(key) > MAX_CONCURRENCY_KEY_LENGTH:
        raise InvalidParamsError(
            f"the concurrency key of task {config.name!r} would be {len(key)} characters long; "
            f"at most {MAX_CONCURRENCY_KEY_LENGTH} are allowed"
        )
    return key


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    # A module imported twice (e.g. as a file path and as a module) re-registers the same code.
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def get_task_config(name: str, version: int = 1) -> TaskConfig:
    """The config registered for (name, version); raises ``UnknownTaskError``."""
    try:
        return _registry[(name, version)]
    except KeyError:
        known = sorted(v for (n, v) in _registry if n == name)
        hint = f" (registered versions: {known})" if known else ""
        raise UnknownTaskError(f"no task {name!r} version {version} is registered{hint}") from None


def find_task_config(name: str, version: int = 1) -> TaskConfig | None:
    """The config for (name, version), or ``None``."""
    return _registry.get((name, version))


def registered_tasks() -> list[TaskConfig]:
    """Every registered task, sorted by name then version."""
    return [_registry[k] for k in sorted(_registry)]


@functools.lru_cache(maxsize=1024)
def _signature(function: Callable[..., Any]) -> inspect.Signature:
    # inspect.signature costs tens of microseconds; a bulk submit validates thousands of tasks.
    return inspect.signature(function)


@dataclass(frozen=True)
class TaskParams:
    """The keyword parameters a task accepts: all of them, the required ones, and whether ``**kwargs``.

    ``positional_only`` names parameters that cannot be passed by keyword (so params can never
    fill them): a task with a required one cannot be called with params at all.
    """

    names: list[str]
    required: list[str]
    accepts_any: bool
    positional_only: list[str] = field(default_factory=list)

    @functools.cached_property
    def allowed(self) -> frozenset[str]:
        return frozenset(self.names)


def task_params(config: TaskConfig) -> TaskParams:
    """Describe the parameters of a registered task (for the API's task catalogue)."""
    return _params_of(config.function)


@functools.lru_cache(maxsize=1024)
def _params_of(function: Callable[..., Any]) -> TaskParams:
    # Keyed by the function only (the registry bounds how many there are), never by anything a
    # client sends: a cache keyed on request data grows with every distinct request.
    names: list[str] = []
    required: list[str] = []
    positional_only: list[str] = []
    accepts_any = False
    for param in _signature(function).parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_any = True
        elif param.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(param.name)
            if param.default is inspect.Parameter.empty:
                required.append(param.name)
        elif param.kind is inspect.Parameter.POSITIONAL_ONLY and param.default is inspect.Parameter.empty:
            positional_only.append(param.name)
    return TaskParams(names, required, accepts_any, positional_only)


def binding_error(params: TaskParams, given: Iterable[str]) -> str | None:
    """Why keyword arguments named ``given`` cannot call a function with ``params``, or None.

    The messages are those of ``inspect.Signature.bind``; the cost is a set difference or two.
    """
    if params.positional_only:
        return f"missing a required argument: {params.positional_only[0]!r} (positional-only)"
    given = given if isinstance(given, Set) else set(given)
    if not params.accepts_any and given:
        unexpected = given - params.allowed
        if unexpected:
            name = min(unexpected)  # the same one every time
            shown = name if len(name) <= 100 else name[:100] + "..."
            return f"got an unexpected keyword argument {shown!r}"
    if params.required:
        missing = [name for name in params.required if name not in given]
        if missing:
            return f"missing a required argument: {missing[0]!r}"
    return None


def validate_params(config: TaskConfig, params: Mapping[str, Any]) -> None:
    """Raise ``InvalidParamsError`` unless ``params`` bind to the task's keyword parameters."""
    error = binding_error(_params_of(config.function), params.keys())
    if error is not None:
        raise InvalidParamsError(f"params do not fit task {config.name!r}: {error}")


def loaded_task_modules() -> list[str]:
    """The targets ``load_task_module`` has imported in this process, in order."""
    return list(_loaded_modules)


def load_task_module(target: str) -> None:
    """Import the user's task module, given as a dotted name or a path to a ``.py`` file."""
    _import_task_module(target)
    if target not in _loaded_modules:
        _loaded_modules.append(target)


def _import_task_module(target: str) -> None:
    path = Path(target)
    try:
        if target.endswith(".py") or path.is_file():
            if not path.is_file():
                raise TaskModuleError(f"task module file {target!r} does not exist")
            module_name = f"jobbers_tasks_{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path.resolve())
            if spec is None or spec.loader is None:
                raise TaskModuleError(f"cannot load {target!r} as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            sys.path.insert(0, str(path.resolve().parent))
            spec.loader.exec_module(module)
        else:
            if "" not in sys.path and "." not in sys.path:
                sys.path.insert(0, "")
            importlib.import_module(target)
    except TaskModuleError:
        raise
    except TaskRegistrationError:
        raise
    except Exception as exc:
        raise TaskModuleError(f"could not import task module {target!r}: {exc!r}") from exc
