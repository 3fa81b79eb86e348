"""The deployment files, checked statically: docker-compose.yml, Dockerfile, otel-config.yaml, the
OpenObserve dashboard and docs/operations.md agree with the code (console scripts, settings,
metric names) and keep the operational rules (healthchecks, supervision, AOF, no hard-coded
credentials)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import opentelemetry.environment_variables as otel_api_env
import opentelemetry.sdk.environment_variables as otel_sdk_env
import pytest
import yaml

from jobbers.telemetry.instruments import Histogram
from jobbers.settings import Settings
from jobbers.telemetry import INSTRUMENTS

ROOT = Path(__file__).resolve().parent.parent
#: Services that run a Jobbers process from our image (the rest are third-party images).
JOBBERS_SERVICES = {"manager", "worker", "scheduler", "cleaner"}
EXPECTED_SERVICES = JOBBERS_SERVICES | {"redis", "collector", "openobserve"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def console_scripts() -> set[str]:
    """Read at test time: other changes may add scripts."""
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def variables_the_code_reads() -> set[str]:
    settings = {name.upper() for name in Settings.model_fields}
    otel = {n for module in (otel_sdk_env, otel_api_env) for n in dir(module) if n.startswith("OTEL_")}
    return settings | otel


def test_compose_has_every_service_with_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test") and check["test"] != ["NONE"], f"{name} has no healthcheck"


def test_every_jobbers_service_runs_a_real_console_script(services: dict[str, dict[str, Any]]) -> None:
    scripts = console_scripts()
    for name in JOBBERS_SERVICES:
        service = services[name]
        assert service.get("build") == "." and service.get("image") == "jobbers:local", name
        named = re.findall(r"\bjobbers_[a-z_]+", command_text(service))
        assert named, f"{name} runs no jobbers console script"
        assert set(named) <= scripts, f"{name} runs unknown scripts {set(named) - scripts}"
    assert "jobbers_manager" in command_text(services["manager"])
    assert "jobbers_worker" in command_text(services["worker"])
    assert "jobbers_scheduler" in command_text(services["scheduler"])
    assert "jobbers_cleaner" in command_text(services["cleaner"])


def test_every_variable_a_jobbers_service_sets_is_read_by_the_code(
    services: dict[str, dict[str, Any]],
) -> None:
    known = variables_the_code_reads()
    for name in JOBBERS_SERVICES:
        env = services[name].get("environment") or {}
        assert isinstance(env, dict), f"{name}: use a mapping for environment"
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables nothing reads: {unknown}"
        assert {"REDIS_URL", "SQL_PATH"} <= set(env), name


def test_the_worker_is_supervised_or_bounded(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    # WORKER_TTL's default (50) assumes a supervisor restarts the worker (README, Configuration).
    assert worker.get("restart") == "always" or str(worker["environment"].get("WORKER_TTL")) == "0"
    for name in ("manager", "scheduler", "cleaner", "redis", "collector", "openobserve"):
        assert services[name].get("restart") in ("always", "unless-stopped"), name


def test_redis_persists_with_aof(services: dict[str, dict[str, Any]]) -> None:
    command = command_text(services["redis"])
    assert re.search(r"--appendonly\s+yes", command)
    assert any(str(v).endswith(":/data") for v in services["redis"].get("volumes", []))


def test_credentials_are_overridable_local_defaults(services: dict[str, dict[str, Any]]) -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    for line in raw.splitlines():
        if re.search(r"(PASSWORD|SECRET|TOKEN)\w*:", line) and not line.strip().startswith("#"):
            value = line.split(":", 1)[1].strip()
            assert re.fullmatch(r"\$\{\w+:-[^}]*\}", value), f"hard-coded credential: {line.strip()}"
    assert "LOCAL DEVELOPMENT DEFAULT" in raw


def test_depends_on_names_real_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for other in service.get("depends_on") or {}:
            assert other in services, f"{name} depends on unknown {other}"


def test_the_manager_is_checked_through_its_health_endpoint(services: dict[str, dict[str, Any]]) -> None:
    assert re.search(r"/(readyz|healthz)", " ".join(services["manager"]["healthcheck"]["test"]))
    assert "8000:8000" in services["manager"]["ports"]


def test_only_the_manager_is_published_beyond_this_host(services: dict[str, dict[str, Any]]) -> None:
    """Redis and the OTLP receivers have no auth, OpenObserve has default credentials: loopback only."""
    for name, service in services.items():
        for port in service.get("ports", []):
            if name == "manager":
                continue
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert {p.split(":")[1] for p in services["redis"]["ports"]} == {"6379"}
    assert {p.split(":")[1] for p in services["collector"]["ports"]} == {"4317", "4318"}


def _images(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every third-party image each service uses, including FROM lines of inline Dockerfiles."""
    images: dict[str, str] = {}
    for name, service in services.items():
        if name in JOBBERS_SERVICES:
            continue
        if "image" in service and "build" not in service:
            images[service["image"]] = name
        inline = (service.get("build") or {}).get("dockerfile_inline", "") if isinstance(service.get("build"), dict) else ""
        for ref in re.findall(r"^FROM\s+(\S+)", inline, re.MULTILINE):
            images[ref] = name
    return images


def test_every_third_party_image_is_pinned_to_a_version(services: dict[str, dict[str, Any]]) -> None:
    images = _images(services)
    assert any("openobserve" in ref for ref in images), images
    for ref, name in images.items():
        repository, _, tag = ref.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {ref} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {ref} is not pinned to a version"


def test_dockerfile_installs_the_package_and_runs_a_console_script() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert lines[0].startswith("FROM python:3.1")
    assert any(re.fullmatch(r"RUN pip install \.", line) for line in lines)
    assert any(line.startswith("COPY pyproject.toml") for line in lines)
    assert any(line.startswith("COPY jobbers ") for line in lines)
    cmd = next(line for line in lines if line.startswith("CMD"))
    assert json.loads(cmd[3:].strip())[0] in console_scripts()
    assert any(line.startswith("USER ") for line in lines)


def test_collector_config_receives_otlp_and_redis_and_exports_every_pipeline(
    services: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load((ROOT / "otel-config.yaml").read_text())
    assert {"otlp", "redis"} <= set(config["receivers"])
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert config["receivers"]["redis"]["endpoint"] == "redis:6379"
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"metrics", "traces", "logs"}
    assert "redis" in pipelines["metrics"]["receivers"]
    for name, pipeline in pipelines.items():
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline[part]) <= set(config[part]), f"{name}: undefined {part}"
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    assert all("openobserve" in e for e in config["exporters"])
    # Every variable the config reads is set on the collector service.
    wanted = set(re.findall(r"\$\{env:(\w+)\}", (ROOT / "otel-config.yaml").read_text()))
    assert wanted and wanted <= set(services["collector"]["environment"])
    mounted = " ".join(services["collector"]["volumes"])
    assert "./otel-config.yaml:" in mounted


def test_processes_send_telemetry_to_the_collector(services: dict[str, dict[str, Any]]) -> None:
    for name in JOBBERS_SERVICES:
        env = services[name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://collector:4317"), name
        assert env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc"


def _queried_metrics(dashboard: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for tab in dashboard["tabs"]:
        for panel in tab["panels"]:
            for query in panel["queries"]:
                names |= set(re.findall(r"([a-z_]+)\{", query["query"]))
    return names


def test_dashboard_queries_only_metrics_that_exist_and_covers_the_essentials() -> None:
    dashboard = json.loads((ROOT / "deploy" / "openobserve-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["tabs"] and dashboard["version"] >= 1
    exported = {i.name for i in INSTRUMENTS if not isinstance(i, Histogram)}
    exported |= {f"{i.name}_bucket" for i in INSTRUMENTS if isinstance(i, Histogram)}
    queried = _queried_metrics(dashboard)
    assert queried <= exported, queried - exported
    assert {
        "tasks_processed", "task_execution_time_bucket", "task_end_to_end_latency_bucket",
        "time_in_queue_bucket", "queue_depth", "tasks_retried", "tasks_dead_lettered", "stalls_recovered",
    } <= queried  # fmt: skip
    layouts = [p["layout"]["i"] for tab in dashboard["tabs"] for p in tab["panels"]]
    assert len(layouts) == len(set(layouts))


def test_operations_guide_lists_every_metric() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    for instrument in INSTRUMENTS:
        assert f"| `{instrument.name}` |" in guide, instrument.name
