"""A virtualenv per baseline, installed from PyPI on first use and kept for the next run.

Each baseline's packages are pinned here, with ``torch==2.13.0`` (the CPU build this machine holds
on disk), so pip neither upgrades torch nor pulls a CUDA build. A virtualenv lives under
``~/.cache/rag-bench-venvs/<hash of the python version and the pins>``; one whose install did not
finish is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

VENV_ROOT = Path.home() / ".cache" / "rag-bench-venvs"
BASELINE_PINS: dict[str, tuple[str, ...]] = {
    "trl": (
        "torch==2.13.0",
        "trl==1.16.0",
        "transformers==5.24.0",
        "peft==0.21.2",
        "accelerate==1.15.0",
        "datasets==5.2.0",
    ),
}
_DONE = "installed.json"


def baseline_python(name: str) -> Path:
    """The python of ``name``'s virtualenv, installing it first when it is not there."""
    pins = BASELINE_PINS[name]
    key = json.dumps([name, list(sys.version_info[:2]), list(pins)])
    folder = VENV_ROOT / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    python = folder / "bin" / "python"
    if (folder / _DONE).exists():
        return python
    shutil.rmtree(folder, ignore_errors=True)
    print(f"installing {' '.join(pins)} into {folder}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, *pins], check=True)
    (folder / _DONE).write_text(json.dumps(list(pins)), encoding="utf-8")
    return python
