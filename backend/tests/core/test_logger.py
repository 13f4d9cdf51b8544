"""The one log handler follows ``sys.stderr`` when a caller swaps it."""

from __future__ import annotations

import io

import pytest

from app.core.logger import get_logger, setup_logging


def test_records_go_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    setup_logging("WARNING")
    get_logger("test").warning("one")
    first.close()
    monkeypatch.setattr("sys.stderr", second)
    setup_logging("WARNING")
    get_logger("test").warning("two")
    assert "rag.test: two" in second.getvalue()
    assert "Logging error" not in second.getvalue()
