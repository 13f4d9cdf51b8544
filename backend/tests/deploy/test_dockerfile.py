"""The Dockerfile, read as instructions: stages, user, health check, and what it installs and copies."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "backend" / "Dockerfile"


@dataclass
class Stage:
    """One ``FROM`` block: its base image, name and instructions (keyword, arguments)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        """Arguments of every instruction with this keyword, in order."""
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile: continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def _copy_sources(arg: str) -> list[str]:
    words = [w for w in shlex.split(arg) if not w.startswith("--")]
    return words[:-1]


def _ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(fnmatch.fnmatch(part, tail) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    parsed = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    assert all(s.name for s in parsed), "every stage is named, so targets can be chosen"
    return {s.name: s for s in parsed if s.name}


def test_stages_and_default_target(stages: dict[str, Stage]) -> None:
    """Node builds the UI, Python installs, the last (default) stage is the slim runtime."""
    assert list(stages) == ["frontend", "builder", "gpu", "runtime"]
    assert stages["frontend"].base.startswith("node:")
    assert "npm run build" in stages["frontend"].args("RUN")
    assert stages["runtime"].base.startswith("python:") and "slim" in stages["runtime"].base
    assert stages["builder"].base == stages["runtime"].base


def test_runtime_runs_as_a_non_root_user(stages: dict[str, Stage]) -> None:
    for name in ("runtime", "gpu"):
        users = stages[name].args("USER")
        assert users, f"{name} sets a USER"
        uid, _, gid = users[-1].partition(":")
        assert uid.isdigit() and int(uid) > 0 and gid == uid
        assert any(f"useradd --create-home --uid {uid}" in run for run in stages[name].args("RUN"))


def test_runtime_health_check_probes_readiness(stages: dict[str, Stage]) -> None:
    """``/ready``, not ``/health``: a server whose database is down must count as unhealthy."""
    (check,) = stages["runtime"].args("HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert "--interval=" in options
    program, flag, code = json.loads(command)
    assert (program, flag) == ("python", "-c")
    compile(code, "HEALTHCHECK", "exec")
    assert "http://127.0.0.1:" in code and "/ready" in code and "API_PORT" in code
    assert "API_PORT=8000" in " ".join(stages["runtime"].args("ENV"))
    assert stages["runtime"].args("CMD") == ['["rag", "serve"]']


def test_installs_exactly_the_pinned_requirements(stages: dict[str, Stage]) -> None:
    """The image installs backend/requirements.txt, the same file the Makefile (and CI) installs."""
    pip_runs = [run for run in stages["builder"].args("RUN") if run.startswith("pip install")]
    assert pip_runs[0] == "pip install --no-cache-dir -r backend/requirements.txt"
    assert pip_runs[1:] == ["pip install --no-cache-dir --no-deps -e backend"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet -r backend/requirements.txt" in makefile
    assert (ROOT / ".ci" / "run").read_text(encoding="utf-8").rstrip().endswith("make test")


def test_gpu_target_is_cuda_with_the_ml_requirements(stages: dict[str, Stage]) -> None:
    gpu = stages["gpu"]
    assert gpu.base.startswith("nvidia/cuda:")
    assert (
        "pip install --no-cache-dir -r backend/requirements.txt -r backend/requirements-ml.txt"
        in gpu.args("RUN")
    )
    # docs/deployment.md launches several GPUs with these configs from inside the image.
    assert "deploy/accelerate deploy/accelerate" in gpu.args("COPY")


def test_no_caches_or_build_tools_in_the_images(stages: dict[str, Stage]) -> None:
    for name in ("builder", "gpu", "runtime"):
        for run in stages[name].args("RUN"):
            if "pip install" in run:
                assert "--no-cache-dir" in run, run
            if "apt-get install" in run:
                assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists/*" in run
            assert not re.search(r"\b(gcc|g\+\+|build-essential|make)\b", run), run
    # The runtime takes only the built virtual environment, the app and the built UI.
    copies = stages["runtime"].args("COPY")
    assert all(c.startswith("--from=") for c in copies)
    assert any(c.endswith("/app/frontend/dist frontend/dist") for c in copies)


def test_copied_files_exist_and_are_in_the_build_context(stages: dict[str, Stage]) -> None:
    """Every COPY from the context names a tracked path that .dockerignore lets through."""
    patterns = _ignore_patterns()
    sources = [
        src
        for stage in stages.values()
        for arg in stage.args("COPY")
        if not arg.startswith("--from=")
        for src in _copy_sources(arg)
    ]
    assert "backend/requirements.txt" in sources and "frontend/src" in sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such path"
        assert not _ignored(src, patterns), f"COPY {src} is excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = _ignore_patterns()
    for path in (".git", ".venv", ".env", "data/pg", "frontend/node_modules", "frontend/dist"):
        assert _ignored(path, patterns), path
    assert _ignored("backend/app/__pycache__/main.cpython-311.pyc", patterns)
    assert not _ignored("backend/app/main.py", patterns)


def test_frontend_lands_where_the_server_looks_for_it(stages: dict[str, Stage]) -> None:
    """main.py serves ``parents[2] / "frontend" / "dist"``: /app/frontend/dist for /app/backend/app."""
    assert stages["runtime"].args("WORKDIR") == ["/app"]
    assert "--from=builder /app/backend backend" in stages["runtime"].args("COPY")
    main = (ROOT / "backend" / "app" / "main.py").read_text(encoding="utf-8")
    assert 'parents[2] / "frontend" / "dist"' in main
