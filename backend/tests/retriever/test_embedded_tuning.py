"""The embedded server's memory settings: sized to the machine, overridable, applied at start."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError

from app.core.config import DatabaseSettings
from app.retriever.embedded_postgres import EmbeddedPostgres
from app.retriever.embedded_tuning import (
    TUNING_FILE,
    available_cores,
    available_memory,
    parallel_settings,
    server_settings,
    sized_settings,
    write_tuning,
)

GB = 1024**3


def test_settings_take_a_share_of_memory_within_bounds() -> None:
    assert sized_settings(8 * GB) == {
        "shared_buffers": "1024MB",
        "effective_cache_size": "4096MB",
        "work_mem": "16MB",
        "maintenance_work_mem": "512MB",
    }
    assert sized_settings(GB // 2) == {
        "shared_buffers": "128MB",
        "effective_cache_size": "512MB",
        "work_mem": "4MB",
        "maintenance_work_mem": "64MB",
    }
    assert sized_settings(1024 * GB) == {
        "shared_buffers": "4096MB",
        "effective_cache_size": "65536MB",
        "work_mem": "64MB",
        "maintenance_work_mem": "2048MB",
    }


def test_an_index_build_may_use_every_core_within_postgresqls_worker_processes() -> None:
    workers = [
        parallel_settings(cores)["max_parallel_maintenance_workers"] for cores in (1, 2, 8, 64)
    ]
    assert workers == ["0", "1", "7", "7"]
    assert 1 <= available_cores() <= (os.cpu_count() or 1)


def test_overrides_replace_or_add_to_the_sized_settings() -> None:
    settings = server_settings(
        {"shared_buffers": "2GB", "random_page_cost": "1.1"}, 8 * GB, cores=4
    )
    assert settings["shared_buffers"] == "2GB"
    assert settings["random_page_cost"] == "1.1"
    assert settings["work_mem"] == "16MB"
    assert settings["max_parallel_maintenance_workers"] == "3"
    overridden = server_settings({"max_parallel_maintenance_workers": "0"}, 8 * GB, cores=4)
    assert overridden["max_parallel_maintenance_workers"] == "0"


def test_the_file_is_included_once_and_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    (tmp_path / "postgresql.conf").write_text("max_connections = 100\n", encoding="utf-8")
    assert write_tuning(tmp_path, {"shared_buffers": "1GB", "search_path": "a's"})
    assert not write_tuning(tmp_path, {"shared_buffers": "1GB", "search_path": "a's"})
    assert write_tuning(tmp_path, {"shared_buffers": "2GB"})
    main = (tmp_path / "postgresql.conf").read_text(encoding="utf-8")
    assert main.startswith("max_connections = 100\n")
    assert main.count(f"include_if_exists = '{TUNING_FILE}'") == 1
    assert "shared_buffers = '2GB'" in (tmp_path / TUNING_FILE).read_text(encoding="utf-8")
    write_tuning(tmp_path, {"search_path": "a's"})
    assert "search_path = 'a''s'" in (tmp_path / TUNING_FILE).read_text(encoding="utf-8")


def test_the_setting_reads_name_value_pairs_and_refuses_nonsense() -> None:
    settings = DatabaseSettings(embedded_settings="shared_buffers=2GB, hnsw.ef_search = 60,")
    assert settings.embedded_settings == {"shared_buffers": "2GB", "hnsw.ef_search": "60"}
    for bad in ("shared_buffers", "bad name=1", "work_mem=", "x=1\ny=2"):
        with pytest.raises(ValidationError, match="DATABASE_EMBEDDED_SETTINGS"):
            DatabaseSettings(embedded_settings=bad)


@pytest.fixture
def folder() -> Iterator[Path]:
    """A data folder outside pytest's basetemp (see ``temporary_server`` in conftest)."""
    path = Path(tempfile.mkdtemp(prefix="rag-test-tuning-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _show(url: str, *names: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [conn.execute(f"SHOW {name}").fetchone()[0] for name in names]


def test_a_new_and_a_restarted_server_run_with_the_settings(folder: Path) -> None:
    sized = sized_settings(available_memory())
    server = EmbeddedPostgres(folder / "pg", settings={"work_mem": "12MB"})
    url = server.start()
    try:
        # The folder was initialised by this start: the settings apply from its first use.
        assert _show(
            url,
            "shared_buffers",
            "maintenance_work_mem",
            "work_mem",
            "max_parallel_maintenance_workers",
        ) == [
            sized["shared_buffers"],
            sized["maintenance_work_mem"],
            "12MB",
            parallel_settings(available_cores())["max_parallel_maintenance_workers"],
        ]
    finally:
        server.stop()
    server = EmbeddedPostgres(folder / "pg", settings={"shared_buffers": "160MB"})
    url = server.start()
    try:
        assert _show(url, "shared_buffers", "work_mem") == ["160MB", sized["work_mem"]]
    finally:
        server.stop()
