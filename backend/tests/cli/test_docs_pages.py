"""``rag docs list`` a page at a time (``--limit``, ``--cursor``) or whole (``--all``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.cli import main


@pytest.fixture
def seven(cli_env: Path) -> list[str]:
    """Seven documents (one ``.jsonl``) in a fresh ``rag`` schema; their ids."""
    tmp_path = cli_env
    ids = [f"doc-{n}" for n in range(7)]
    lines = [json.dumps({"id": i, "text": f"{i}번 문서의 본문입니다."}) for i in ids]
    (tmp_path / "seven.jsonl").write_text("\n".join(lines), encoding="utf-8")
    assert main(["ingest", str(tmp_path / "seven.jsonl"), "--quiet", "--json"]) == 0
    return ids


def _listed(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["docs", "list", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_pages_follow_each_other_through_the_cursor(
    seven: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    pages = [_listed(capsys, "--limit", "3")]
    while pages[-1]["next_cursor"] is not None:
        pages.append(_listed(capsys, "--limit", "3", "--cursor", pages[-1]["next_cursor"]))
    assert [len(p["documents"]) for p in pages] == [3, 3, 1]
    assert all(p["total"] == 7 for p in pages)
    listed = [d["id"] for p in pages for d in p["documents"]]
    assert sorted(listed) == sorted(seven) and len(set(listed)) == 7


def test_all_lists_every_document_and_text_output_says_what_is_left(
    seven: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    everything = _listed(capsys, "--all")
    assert sorted(d["id"] for d in everything["documents"]) == sorted(seven)
    assert everything["next_cursor"] is None

    assert main(["docs", "list", "--limit", "2"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2
    assert "2 of 7 documents" in err and "--cursor " in err and "--all" in err


def test_bad_page_options_are_refused(seven: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    for limit in ("0", "501", "many"):
        with pytest.raises(SystemExit) as exited:
            main(["docs", "list", "--limit", limit])
        assert exited.value.code == 2
    with pytest.raises(SystemExit):
        main(["docs", "list", "--all", "--limit", "5"])
    capsys.readouterr()
    assert main(["docs", "list", "--cursor", "not-a-cursor"]) == 2
    assert "cursor" in capsys.readouterr().err
