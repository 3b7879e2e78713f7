"""docker-compose.yml stays in step with the settings and the CLI (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmsearch.cli import build_parser
from search.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
MMSEARCH_SERVICES = ["api", "ui", "worker", "worker-gpu", "flower"]


def _env_names(service: dict) -> list[str]:
    env = service.get("environment") or {}
    return list(env) if isinstance(env, dict) else [item.split("=", 1)[0] for item in env]


def _is_setting(name: str) -> bool:
    """MMSEARCH_X or MMSEARCH_GROUP__FIELD must name a field of Settings."""
    path = name.removeprefix("MMSEARCH_").lower().split("__")
    model = Settings
    for part in path:
        fields = model.model_fields
        if part not in fields:
            return False
        annotation = fields[part].annotation
        model = annotation if isinstance(annotation, type) and hasattr(annotation, "model_fields") else None
        if model is None and part != path[-1]:
            return False
    return True


def test_compose_has_every_scale_out_service():
    assert set(SERVICES) >= {"qdrant", "redis", "postgres", "api", "ui", "worker", "worker-gpu", "flower"}
    assert "healthcheck" in SERVICES["qdrant"] and SERVICES["qdrant"]["volumes"]
    assert "--appendonly" in SERVICES["redis"]["command"]


@pytest.mark.parametrize("service", MMSEARCH_SERVICES)
def test_every_mmsearch_variable_names_a_real_setting(service):
    names = [n for n in _env_names(SERVICES[service]) if n.startswith("MMSEARCH_") and n != "MMSEARCH_API_URL"]
    unknown = [n for n in names if not _is_setting(n)]
    assert not unknown, f"{service} sets variables that no setting reads: {unknown}"


def test_services_point_at_the_scale_out_backends():
    env = SERVICES["api"]["environment"]
    assert env["MMSEARCH_STORE_URL"].startswith("http://qdrant:")
    assert env["MMSEARCH_CATALOG_URL"].startswith("postgresql")
    assert env["MMSEARCH_BROKER_URL"].startswith("redis://redis:")
    Settings(**{k.removeprefix("MMSEARCH_").lower(): v for k, v in env.items() if "__" not in k and "${" not in v})


@pytest.mark.parametrize("service", ["api", "worker", "worker-gpu"])
def test_service_commands_are_valid_cli_invocations(service):
    command = SERVICES[service]["command"]
    assert command[0] == "mmsearch"
    build_parser().parse_args(command[1:])  # exits with status 2 on an unknown option


def test_gpu_worker_reserves_a_gpu_and_takes_the_embedding_queue():
    gpu = SERVICES["worker-gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["command"][gpu["command"].index("--queues") + 1] == "gpu"
    assert SERVICES["worker"]["command"][SERVICES["worker"]["command"].index("--queues") + 1] == "cpu"


def test_ui_runs_the_streamlit_app_against_the_api():
    assert (ROOT / "ui" / "app.py").is_file()
    # The browser loads media from the same URL, so it must not be a compose-internal host name.
    assert SERVICES["ui"]["environment"]["MMSEARCH_API_URL"] == "http://localhost:8000"
    assert SERVICES["ui"]["network_mode"] == "host"
    assert "8000:8000" in SERVICES["api"]["ports"]


def test_every_third_party_image_is_pinned_to_a_version() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        if image and not image.startswith("mmsearch:"):
            assert ":" in image and not image.endswith(":latest"), f"{name} runs {image!r}"
