"""docker-compose.yml, parsed: services, health checks, GPUs, volumes and the variables they use."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import FinetuneSettings, JobsSettings, LLMSettings, OpenAISettings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}; $$ escapes a dollar.
_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _documented_variables() -> dict[str, str]:
    names = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            names[name.strip()] = value.strip()
    return names


def _mount(volume: str) -> tuple[str, str, str]:
    """``SOURCE:TARGET[:MODE]`` → (source, target, mode); the source may hold ``${VAR:-x}``."""
    match = re.fullmatch(r"(.+):(/[^:]*)(?::(ro|rw))?", volume)
    assert match, volume
    return match[1], match[2], match[3] or "rw"


def _gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return service["deploy"]["resources"]["reservations"]["devices"]


def test_every_variable_is_in_env_example_with_the_same_default() -> None:
    documented = _documented_variables()
    text = COMPOSE.read_text(encoding="utf-8")
    used = _VARIABLE.findall(text)
    assert used, "the compose file reads its settings from the environment"
    for name, operator, default in used:
        assert name in documented, f"${{{name}}} is not in .env.example"
        # An unset variable and the copied example must start the same stack.
        assert operator == ":-", f"${{{name}}} has no default"
        assert default == documented[name], f"${{{name}}}: {default!r} vs {documented[name]!r}"


def _with_defaults(text: str) -> str:
    """The file as Compose reads it when nothing is set: every variable replaced by its default."""
    return _VARIABLE.sub(lambda m: m[3] if m[2] == ":-" else "", text).replace("$$", "$")


def test_the_file_is_valid_compose_with_its_defaults() -> None:
    """Checked against the Compose specification by a spec-compliant parser, not only as YAML."""
    from compose_spec import PyCompose

    # PyYAML resolves the file's merge keys (<<: *api-environment), which that parser lacks.
    resolved = yaml.safe_load(_with_defaults(COMPOSE.read_text(encoding="utf-8")))
    parsed = PyCompose.from_yaml(yaml.safe_dump(resolved))
    assert set(parsed.service_names()) == set(resolved["services"])

    broken = copy.deepcopy(resolved)
    broken["services"]["api"]["depends_on"]["db"]["condition"] = "service_happy"
    with pytest.raises(ValueError, match="service_happy"):
        PyCompose.from_yaml(yaml.safe_dump(broken))
    broken = copy.deepcopy(resolved)
    broken["services"]["trainer"]["healthchek"] = broken["services"]["trainer"].pop("healthcheck")
    with pytest.raises(ValueError, match="healthchek"):
        PyCompose.from_yaml(yaml.safe_dump(broken))


def test_every_service_has_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"db", "api", "trainer", "vllm", "api-vllm"} <= set(services)
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert not check.get("disable"), name


def test_db_is_pgvector_with_a_volume(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    assert db["image"].startswith("pgvector/pgvector:")
    assert "pg_isready" in db["healthcheck"]["test"][1]
    volume, _, mount = db["volumes"][0].partition(":")
    assert volume in compose["volumes"] and mount == "/var/lib/postgresql/data"


def test_api_waits_for_a_healthy_db_and_points_at_it(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    assert re.fullmatch(r"postgresql://\S+@db:5432/\S+", api["environment"]["DATABASE_URL"])
    assert api["environment"]["API_HOST"] == "0.0.0.0"
    assert api["ports"] == ["${API_PORT:-8000}:8000"]
    assert api["build"] == {"context": ".", "dockerfile": "backend/Dockerfile", "target": "runtime"}
    # Readiness: an API whose database is gone is unhealthy, though its process still answers.
    assert "/ready" in " ".join(api["healthcheck"]["test"])
    assert "/ready" in " ".join(compose["services"]["api-vllm"]["healthcheck"]["test"])
    assert "profiles" not in api and "profiles" not in compose["services"]["db"]


def test_trainer_reserves_gpus_and_trains_into_the_adapter_volume(
    compose: dict[str, Any],
) -> None:
    trainer = compose["services"]["trainer"]
    assert trainer["profiles"] == ["trainer"]
    assert trainer["build"]["target"] == "gpu"
    assert any("gpu" in device["capabilities"] for device in _gpu_devices(trainer))
    command = trainer["command"]
    assert command[:3] == ["rag", "finetune", "train"]
    data = command[command.index("--data") + 1]
    output = command[command.index("--output") + 1]
    mounts = {target: (source, mode) for source, target, mode in map(_mount, trainer["volumes"])}
    assert mounts[data] == ("${TRAIN_DATA_DIR:-./data/reviews}", "ro")
    assert mounts[str(Path(output).parent)] == ("adapters", "rw")
    assert "adapters" in compose["volumes"]


def test_vllm_serves_the_trained_adapter(compose: dict[str, Any]) -> None:
    vllm = compose["services"]["vllm"]
    trainer = compose["services"]["trainer"]
    assert vllm["profiles"] == ["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    assert any("gpu" in device["capabilities"] for device in _gpu_devices(vllm))
    command = vllm["command"]
    assert "--enable-lora" in command
    name, _, path = command[command.index("--lora-modules") + 1].partition("=")
    assert name == "reviews"
    # The adapter folder vLLM reads is the one the trainer writes, through the shared volume.
    (adapters_dir, mode) = next(
        (target, mode)
        for source, target, mode in map(_mount, vllm["volumes"])
        if source == "adapters"
    )
    assert mode == "ro"
    trained = trainer["command"][trainer["command"].index("--output") + 1]
    assert path == f"{adapters_dir}/{Path(trained).name}"
    assert command[command.index("--chat-template") + 1] == f"{path}/chat_template.jinja"
    assert int(command[command.index("--max-lora-rank") + 1]) >= 16


def test_the_api_talks_to_vllm_through_the_openai_provider(compose: dict[str, Any]) -> None:
    api = compose["services"]["api-vllm"]
    env = api["environment"]
    assert env["LLM_PROVIDER"] == "openai"
    assert env["OPENAI_BASE_URL"] == "http://vllm:8000/v1"
    assert env["DATABASE_URL"] == compose["services"]["api"]["environment"]["DATABASE_URL"]
    assert api["build"] == compose["services"]["api"]["build"]
    assert api["image"] == compose["services"]["api"]["image"]
    assert api["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    vllm = compose["services"]["vllm"]["command"]
    assert env["OPENAI_MODEL"] == vllm[vllm.index("--served-model-name") + 1]
    # The settings the app builds from this environment are valid.
    settings = LLMSettings(
        provider=env["LLM_PROVIDER"],
        openai=OpenAISettings(
            base_url=env["OPENAI_BASE_URL"],
            api_key=env["OPENAI_API_KEY"],
            model=env["OPENAI_MODEL"],
        ),
    )
    assert settings.openai.base_url == "http://vllm:8000/v1"


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_the_worker_runs_the_api_s_jobs_and_can_be_scaled(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker, api = services["worker"], services["api"]
    assert "profiles" not in worker
    assert worker["command"] == ["rag", "worker", "--queues", "ingest"]
    assert worker["build"] == api["build"] and worker["image"] == api["image"]
    assert worker["environment"]["DATABASE_URL"] == api["environment"]["DATABASE_URL"]
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"
    # `--scale worker=3` needs containers that claim nothing of their own.
    assert not {"ports", "container_name"} & set(worker)
    assert worker["restart"] == "unless-stopped"
    # The API starts no workers of its own beside the service.
    assert api["environment"]["JOBS_SERVE_WORKERS"] == "0"
    concurrency = _with_defaults(worker["environment"]["JOBS_CONCURRENCY"])
    jobs = JobsSettings(concurrency=int(concurrency), serve_workers=0)
    # Docker waits long enough for a stopping worker to hand its jobs back.
    assert _seconds(worker["stop_grace_period"]) > jobs.shutdown_grace_s
    assert "DATABASE_URL" in " ".join(worker["healthcheck"]["test"])


def test_the_training_worker_runs_fine_tuning_jobs_on_the_gpus(compose: dict[str, Any]) -> None:
    services = compose["services"]
    trainer, api = services["training-worker"], services["api"]
    assert trainer["profiles"] == ["training"]
    assert trainer["build"]["target"] == "gpu"
    assert trainer["command"] == ["rag", "worker", "--queues", "finetune"]
    assert any("gpu" in device["capabilities"] for device in _gpu_devices(trainer))
    assert trainer["environment"]["DATABASE_URL"] == api["environment"]["DATABASE_URL"]
    # The API publishes adapters from the folder the training worker writes: the same volume.
    data_volume = next(v for v in api["volumes"] if v.endswith(":/data"))
    assert data_volume in trainer["volumes"]
    # The server starts no training worker of its own in its CPU image.
    assert api["environment"]["FINETUNE_WORKERS"] == "0"
    # Docker waits for the training process's checkpoint.
    assert _seconds(trainer["stop_grace_period"]) > FinetuneSettings().stop_grace_s
