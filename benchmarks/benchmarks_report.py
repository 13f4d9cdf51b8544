"""Writes one section of docs/benchmarks.md, leaving the other benchmarks' sections as they are."""

from __future__ import annotations

import datetime
import platform
import re
from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
_HEADER = "# Benchmarks\n\nEach section is written by its benchmark script; rerun the command it names.\n"


def replace_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section with ``body`` and a dated machine note."""
    text = REPORT.read_text(encoding="utf-8") if REPORT.exists() else _HEADER
    stamp = f"_Measured {datetime.date.today()} on {platform.machine()}, {platform.python_version()}._"
    section = f"## {title}\n\n{body.strip()}\n\n{stamp}\n"
    pattern = re.compile(
        rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text, encoding="utf-8")
