"""Memory and parallelism settings of the embedded PostgreSQL, sized to the machine it runs on.

PostgreSQL's own defaults (shared_buffers 128 MB, work_mem 4 MB, maintenance_work_mem 64 MB)
are made for a server that shares a small host with anything. The embedded server is this
application's database: at 100k documents the HNSW index alone is about 380 MB, and with 128 MB
of buffers every dense search copies index pages in from the kernel's cache. The sizes below
take a share of the memory this process may use (the cgroup limit in a container, else the
machine's), each within bounds that keep a laptop with a local model usable:

- ``shared_buffers``: 1/8, between 128 MB and 4 GB (holds the HNSW index of ~1M chunks).
- ``effective_cache_size``: 1/2, between 512 MB and 64 GB (a planner hint; allocates nothing).
- ``work_mem``: 1/512, between 4 MB and 64 MB (per sort or hash, per connection).
- ``maintenance_work_mem``: 1/16, between 64 MB and 2 GB (an HNSW build that fits in it is
  several times faster than one that spills).
- ``max_parallel_maintenance_workers``: one less than the cores this process may use (the
  cgroup's CPU quota in a container), at most 7 (PostgreSQL's 8 worker processes): an HNSW
  build runs on every core, its own process among them (PostgreSQL's default is 2 workers).

They are written to ``rag.conf`` in the data folder, which ``postgresql.conf`` includes, before
the server starts; ``ALTER SYSTEM`` (``postgresql.auto.conf``) still overrides them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import psutil

from app.core.logger import get_logger

log = get_logger(__name__)

TUNING_FILE = "rag.conf"
_INCLUDE = f"include_if_exists = '{TUNING_FILE}'"
_MB = 1024 * 1024
# (setting, share of memory, least MB, most MB)
_SIZED = (
    ("shared_buffers", 1 / 8, 128, 4096),
    ("effective_cache_size", 1 / 2, 512, 65536),
    ("work_mem", 1 / 512, 4, 64),
    ("maintenance_work_mem", 1 / 16, 64, 2048),
)
_MOST_MAINTENANCE_WORKERS = 7
_CGROUP_CPU_QUOTA = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def available_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit if lower."""
    memory = psutil.virtual_memory().total
    for path in _CGROUP_LIMITS:
        try:
            limit = path.read_text(encoding="ascii").strip()
        except OSError:
            continue
        # "max" (v2) or a huge number (v1) mean no limit.
        if limit.isdigit():
            memory = min(memory, int(limit))
    return memory


def available_cores() -> int:
    """Cores this process may use: those it may run on, or its cgroup's CPU quota if fewer."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = _CGROUP_CPU_QUOTA.read_text(encoding="ascii").split()
    except (OSError, ValueError):
        return cores
    # "max" means no quota.
    if quota.isdigit() and period.isdigit() and int(period) > 0:
        cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    return cores


def parallel_settings(cores: int) -> dict[str, str]:
    """The settings for a server that may use ``cores`` cores."""
    workers = min(max(cores - 1, 0), _MOST_MAINTENANCE_WORKERS)
    return {"max_parallel_maintenance_workers": str(workers)}


def sized_settings(memory: int) -> dict[str, str]:
    """The settings for a server that may use ``memory`` bytes, as PostgreSQL values."""
    sized = {}
    for name, share, least_mb, most_mb in _SIZED:
        megabytes = min(max(int(memory * share) // _MB, least_mb), most_mb)
        sized[name] = f"{megabytes}MB"
    return sized


def server_settings(
    overrides: Mapping[str, str], memory: int | None = None, cores: int | None = None
) -> dict[str, str]:
    """The settings for ``memory`` and ``cores`` (default: ``available_memory()``,
    ``available_cores()``), with ``overrides`` taking their place or adding to them."""
    settings = sized_settings(available_memory() if memory is None else memory)
    settings.update(parallel_settings(available_cores() if cores is None else cores))
    settings.update(overrides)
    return settings


def write_tuning(pgdata: Path, settings: Mapping[str, str]) -> bool:
    """Write ``settings`` to the data folder's ``rag.conf`` and include it from
    ``postgresql.conf``; ``True`` when the file changed (the server reads it when it starts)."""
    lines = ["# Written by rag at each start of the embedded server; edits are replaced.\n"]
    for name, value in settings.items():
        escaped = value.replace("\\", "\\\\").replace("'", "''")
        lines.append(f"{name} = '{escaped}'\n")
    text = "".join(lines)
    tuning = pgdata / TUNING_FILE
    try:
        changed = tuning.read_text(encoding="utf-8") != text
    except OSError:
        changed = True
    if changed:
        tuning.write_text(text, encoding="utf-8")
    main = pgdata / "postgresql.conf"
    config = main.read_text(encoding="utf-8")
    if _INCLUDE not in config.splitlines():
        main.write_text(config.rstrip("\n") + f"\n\n{_INCLUDE}\n", encoding="utf-8")
    if changed:
        log.info("embedded PostgreSQL settings in %s: %s", tuning, dict(settings))
    return changed
