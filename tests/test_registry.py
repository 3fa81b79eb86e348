import datetime as dt
from pathlib import Path

import pytest

from jobbers import registry
from jobbers.errors import InvalidParamsError, TaskModuleError, TaskRegistrationError, UnknownTaskError
from jobbers.models.task_config import BackoffStrategy, DeadLetterPolicy, ShutdownPolicy
from jobbers.registry import register_task


def test_register_task_records_every_option_and_keeps_the_function() -> None:
    @register_task(name="report", version=2, max_retries=4, retry_delay=3, backoff_strategy="linear",
                   max_retry_delay=60, dead_letter_policy=DeadLetterPolicy.SAVE,
                   max_heartbeat_interval=dt.timedelta(minutes=5), timeout=9,
                   expected_exceptions=(ConnectionError,), on_shutdown="resubmit", max_stalls=2)
    async def report(report_id: int) -> int:
        return report_id

    cfg = registry.get_task_config("report", 2)
    assert cfg.function is report
    assert (cfg.max_retries, cfg.retry_delay, cfg.max_retry_delay, cfg.timeout, cfg.max_stalls) == (4, 3, 60, 9, 2)
    assert cfg.backoff_strategy is BackoffStrategy.LINEAR
    assert cfg.on_shutdown is ShutdownPolicy.RESUBMIT
    assert cfg.max_heartbeat_interval == dt.timedelta(minutes=5)
    assert cfg.expected_exceptions == (ConnectionError,)


def test_registering_a_clashing_name_and_version_fails_loudly() -> None:
    @register_task(name="dup")
    async def first() -> None: ...

    with pytest.raises(TaskRegistrationError, match="already registered"):
        @register_task(name="dup")
        async def second() -> None: ...

    @register_task(name="dup", version=2)  # another version is fine
    async def third() -> None: ...


def test_sync_functions_are_refused() -> None:
    with pytest.raises(TaskRegistrationError, match="async def"):
        @register_task(name="sync")
        def sync() -> None: ...  # type: ignore[type-var]


def test_unknown_task_lists_registered_versions() -> None:
    @register_task(name="known", version=1)
    async def known() -> None: ...

    with pytest.raises(UnknownTaskError, match=r"registered versions: \[1\]"):
        registry.get_task_config("known", 3)


def test_validate_params_checks_the_signature() -> None:
    @register_task(name="add")
    async def add(x: int, y: int) -> int:
        return x + y

    cfg = registry.get_task_config("add")
    registry.validate_params(cfg, {"x": 1, "y": 2})
    with pytest.raises(InvalidParamsError):
        registry.validate_params(cfg, {"x": 1})
    with pytest.raises(InvalidParamsError):
        registry.validate_params(cfg, {"x": 1, "y": 2, "z": 3})


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"x": 1, "y": 2}, None),
        ({"x": 1, "y": 2, "z": 0}, None),
        ({"x": 1}, "missing a required argument: 'y'"),
        ({"x": 1, "y": 2, "w": 3}, "got an unexpected keyword argument 'w'"),
        ({"x": 1, "y": 2, "q" * 500: 3}, "got an unexpected keyword argument '" + "q" * 100 + "...'"),
    ],
)
def test_binding_errors_read_like_python_s_own(params: dict[str, int], error: str | None) -> None:
    async def task(x: int, y: int, *, z: int = 0) -> None: ...

    assert registry.binding_error(registry._params_of(task), params.keys()) == error


def test_binding_accepts_anything_for_kwargs_and_nothing_for_required_positional_only() -> None:
    async def anything(a: int, **kwargs: object) -> None: ...

    async def positional(a: int, /) -> None: ...

    assert registry.binding_error(registry._params_of(anything), {"a", "b", "c"}) is None
    assert registry.binding_error(registry._params_of(anything), {"b"}) == "missing a required argument: 'a'"
    assert "positional-only" in (registry.binding_error(registry._params_of(positional), {"a"}) or "")


def test_validating_params_caches_nothing_keyed_on_the_names_sent() -> None:
    @register_task(name="one")
    async def one(x: int) -> None: ...

    cfg = registry.get_task_config("one")
    registry._params_of.cache_clear()
    for i in range(200):
        with pytest.raises(InvalidParamsError):
            registry.validate_params(cfg, {"x": 1, f"unknown_{i}": i})

    assert registry._params_of.cache_info().currsize == 1  # one entry per function, none per request


def test_load_task_module_by_path_and_by_dotted_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mytasks_by_path.py").write_text(
        "from jobbers.registry import register_task\n"
        "@register_task(name='from_file')\nasync def f(): return 1\n"
    )
    registry.load_task_module(str(tmp_path / "mytasks_by_path.py"))
    assert registry.find_task_config("from_file") is not None
    (tmp_path / "mytasks_dotted.py").write_text(
        "from jobbers.registry import register_task\n"
        "@register_task(name='from_module')\nasync def f(): return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_task_module("mytasks_dotted")
    assert registry.find_task_config("from_module") is not None
    with pytest.raises(TaskModuleError):
        registry.load_task_module("no_such_module_xyz")
    with pytest.raises(TaskModuleError):
        registry.load_task_module(str(tmp_path / "missing.py"))
