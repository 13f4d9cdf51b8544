"""The checks a review file passes before it is read, and the names uploads are kept under."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from app.core.errors import InvalidInput, TooLarge
from app.tuning.dataset_checks import MAX_LINE_BYTES, check_review_data
from app.tuning.datasets import stored_name

LIMIT = 64 * 1024 * 1024


def _code(exc: pytest.ExceptionInfo[InvalidInput] | pytest.ExceptionInfo[TooLarge]) -> str:
    return exc.value.code


@pytest.mark.parametrize("compressed", [False, True])
def test_a_line_as_long_as_the_limit_passes_and_one_byte_more_does_not(
    tmp_path: Path, compressed: bool
) -> None:
    # The short first line puts the long one across the boundary of the blocks read.
    def write(name: str, length: int) -> Path:
        data = b"1\t2\t3\tshort\n" + b"1\t2\t3\t" + b"a" * (length - 6) + b"\n1\t2\t3\tend\n"
        path = tmp_path / (name + (".tsv.gz" if compressed else ".tsv"))
        path.write_bytes(gzip.compress(data) if compressed else data)
        return path

    fits = write("fits", MAX_LINE_BYTES)
    assert check_review_data(fits, name="fits", max_bytes=LIMIT) == fits.stat().st_size
    with pytest.raises(InvalidInput) as refused:
        check_review_data(write("over", MAX_LINE_BYTES + 1), name="over", max_bytes=LIMIT)
    assert _code(refused) == "dataset_line_too_long"
    assert refused.value.params == {"name": "over", "line": 2, "limit_kb": MAX_LINE_BYTES // 1024}


def test_a_json_file_of_the_crawl_may_be_one_long_line(tmp_path: Path) -> None:
    records = [{"review": "리뷰" * 100, "rating": "7"}] * 5000
    path = tmp_path / "1001.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    assert path.stat().st_size > MAX_LINE_BYTES
    assert check_review_data(tmp_path, name="crawl", max_bytes=LIMIT) == path.stat().st_size


def test_a_folder_without_json_files_holds_nothing_to_read(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("1\t좋다\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as refused:
        check_review_data(tmp_path, name="folder", max_bytes=LIMIT)
    assert _code(refused) == "dataset_unreadable"


def test_the_limit_counts_a_folder_whole(tmp_path: Path) -> None:
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps([{"review": "x" * 600, "rating": 1}]))
    with pytest.raises(TooLarge) as refused:
        check_review_data(tmp_path, name="folder", max_bytes=1000)
    assert _code(refused) == "dataset_too_large"


@pytest.mark.parametrize(
    ("filename", "kept_as"),
    [
        ("train.tsv.gz", "data.tsv.gz"),
        ("리뷰.JSONL", "data.jsonl"),
        ("../../etc/passwd", "data"),
        ("shop.txt", "data.txt"),
        ("movie.json.gz", "data.json.gz"),
        ("table.csv", "data.csv"),
        ("archive.tar.gz", "data.gz"),
    ],
)
def test_an_upload_is_kept_under_a_name_the_server_chooses(filename: str, kept_as: str) -> None:
    assert stored_name(filename) == kept_as
