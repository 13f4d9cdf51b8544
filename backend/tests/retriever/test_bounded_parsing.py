"""Each file is read in a parsing process under limits: a breach fails that file with its reason.

The files are small and generated here; each would cost minutes to hours, or gigabytes, without
its limit. The limits are set so that every case ends in seconds.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from app.core.config import ParseSettings, RetrievalSettings
from app.core.errors import InvalidInput, RagError, TooLarge, Unavailable
from app.models.hash import HashEmbedder
from app.retriever.indexer import Indexer
from app.retriever.loaders.common import ReadLimits
from app.retriever.parsing import ParseLimits, parse_bounded, stop_parsing
from tests.conftest import StoreFactory
from tests.utils.documents import make_docx, make_hwpx
from tests.utils.hostile_files import Member, deep_html, jsonl, with_member

BACKEND_DIR = Path(__file__).resolve().parents[2]
MB = 1024 * 1024

# Small enough to be breached by small files, large enough for the honest ones beside them.
LIMITS = ParseLimits.from_settings(
    ParseSettings(
        timeout_s=60,
        memory_mb=128,
        max_expanded_mb=256,
        max_html_depth=64,
        max_document_chars=1000,
        workers=1,
    )
)
# Nothing refuses a deep page up front: only the clock stops it.
SLOW = ParseLimits.from_settings(
    ParseSettings(timeout_s=1, max_html_depth=200_000, max_document_chars=1000, workers=1)
)

# One megabyte of section XML, repeated to make a member as large as a test needs.
SECTION_CHUNK = (
    "<hp:p><hp:run><hp:t>한글 문서의 문단이 같은 말로 되풀이됩니다.</hp:t></hp:run></hp:p>" * 11_000
).encode()[:MB]


@pytest.fixture(autouse=True)
def _no_parser_left() -> Iterator[None]:
    yield
    stop_parsing()


def _refusal(filename: str, data: bytes, limits: ParseLimits = LIMITS) -> RagError:
    with pytest.raises(RagError) as refused:
        parse_bounded(filename, data, limits)
    return refused.value


def _parsers() -> list[psutil.Process]:
    """The parsing processes this test process runs."""
    return [
        child
        for child in psutil.Process().children()
        if "app.retriever.parsing" in " ".join(child.cmdline())
    ]


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(1200):
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def _ended(process: psutil.Process) -> bool:
    try:
        process.wait(timeout=60)
    except psutil.TimeoutExpired:
        # Reparented to an init that does not reap: dead all the same.
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    return True


def test_limits_come_from_the_settings_and_default_to_the_loaders_own() -> None:
    limits = ParseLimits.from_settings(
        ParseSettings(timeout_s=7, memory_mb=300, max_expanded_mb=2, max_html_depth=32)
    )
    assert (limits.timeout_s, limits.memory_mb, limits.max_html_depth) == (7, 300, 32)
    assert limits.read.max_expanded_bytes == 2 * MB
    assert ParseLimits.from_settings(ParseSettings.model_construct()).read == ReadLimits()


def test_files_are_read_in_a_reused_parsing_process() -> None:
    texts = [parse_bounded(f"{i}.txt", f"문서 {i}".encode(), LIMITS)[0].text for i in range(20)]
    assert texts == [f"문서 {i}" for i in range(20)]
    assert len(_parsers()) == 1


def test_html_nested_too_deep_is_refused_before_its_tree_is_built() -> None:
    refused = _refusal("deep.html", deep_html(100_000))
    assert isinstance(refused, TooLarge) and refused.code == "too_deep"
    assert refused.params == {"filename": "deep.html", "limit": 64}
    [page] = parse_bounded("shallow.html", deep_html(60), LIMITS)
    assert page.text.count("글") == 60


@pytest.mark.parametrize(
    ("filename", "package", "member"),
    [
        ("lying.hwpx", make_hwpx([["본문"]]), "Contents/section0.xml"),
        ("lying.docx", make_docx(["문단"]), "word/document.xml"),
    ],
)
def test_a_zip_member_larger_than_its_header_says_is_refused_as_it_shows_it(
    filename: str, package: bytes, member: str
) -> None:
    # 300 MB under a header that claims 1,000 bytes, with the checksum of those 1,000 (zipfile
    # inflates it all, then finds the claim true); inflated first, it would break the memory limit.
    lying = with_member(package, Member(member, SECTION_CHUNK, times=300, claimed_size=1000))
    refused = _refusal(filename, lying)
    assert isinstance(refused, InvalidInput)
    assert f"{member} holds more than the 1,000 bytes its header says" in refused.message


def test_an_honest_huge_xml_member_is_refused_by_its_size() -> None:
    huge = with_member(make_hwpx([["본문"]]), Member("Contents/section0.xml", SECTION_CHUNK, 300))
    assert len(huge) < 2 * MB
    refused = _refusal("huge.hwpx", huge)
    assert isinstance(refused, TooLarge) and refused.code == "file_too_large"
    assert "huge.hwpx expands to 300 MB; the limit is 256 MB" in refused.message


def test_a_decompression_over_the_memory_limit_fails_that_file_alone() -> None:
    hog = with_member(make_docx(["문단"]), Member("word/media/filler.bin", b"\0" * MB, 200))
    refused = _refusal("hog.docx", hog)
    assert isinstance(refused, TooLarge) and refused.code == "parse_memory"
    assert refused.params == {"filename": "hog.docx", "limit_mb": 128}
    [document] = parse_bounded("fine.docx", make_docx(["멀쩡한 문단"]), LIMITS)
    assert document.text == "멀쩡한 문단"


def test_one_long_jsonl_line_fails_the_file_before_it_is_analysed() -> None:
    short = {"id": "a", "text": "짧은 줄"}
    refused = _refusal("long.jsonl", jsonl(short, {"id": "b", "text": "a" * 1001}))
    assert isinstance(refused, TooLarge) and refused.code == "document_too_long"
    assert refused.params == {"filename": "long.jsonl", "limit": 1000}
    assert "long.jsonl line 2 is 1,001 characters long" in refused.message
    # Longer than any line holding 1,000 characters can be: refused before it is decoded.
    padded = {"id": "c", "text": "짧은 줄", "metadata": {"padding": "x" * 6000}}
    refused = _refusal("padded.jsonl", jsonl(short, padded))
    assert refused.code == "document_too_long" and "padded.jsonl line 2 is 6," in refused.message
    # Escaped Hangul takes six characters a letter and still fits.
    escaped = parse_bounded("escaped.jsonl", jsonl(short, {"id": "d", "text": "가" * 990}), LIMITS)
    assert [len(d.text) for d in escaped] == [4, 990]


def test_json_nested_too_deep_is_refused_as_invalid() -> None:
    nested = '{"id": "a", "text": "글", "metadata": {"a": ' + "[" * 2000 + "]" * 2000 + "}}"
    refused = _refusal("nested.jsonl", nested.encode())
    assert isinstance(refused, InvalidInput)
    assert refused.message == "nested.jsonl line 1: the JSON nests too deep to be read."


def test_a_document_longer_than_the_limit_is_refused_whatever_its_format() -> None:
    refused = _refusal("long.txt", ("긴 글. " * 300).encode())
    assert isinstance(refused, TooLarge) and refused.code == "document_too_long"
    rows = "id,text\n1,짧은 행\n2," + "가" * 1500 + "\n"
    refused = _refusal("rows.csv", rows.encode())
    assert refused.code == "document_too_long" and "rows.csv document 2" in refused.message


def test_a_file_over_the_time_limit_is_stopped_and_its_process_replaced() -> None:
    parse_bounded("first.txt", "첫 문서".encode(), SLOW)
    [first] = _parsers()
    refused = _refusal("slow.html", deep_html(100_000), SLOW)
    assert isinstance(refused, TooLarge) and refused.code == "parse_timeout"
    assert refused.params == {"filename": "slow.html", "limit_s": 1.0}
    assert not first.is_running()
    [document] = parse_bounded("next.txt", "다음 문서".encode(), SLOW)
    assert document.text == "다음 문서"
    assert [p.pid for p in _parsers()] != [first.pid]


def test_stopping_ends_the_file_being_read() -> None:
    patient = ParseLimits.from_settings(ParseSettings(timeout_s=600, max_html_depth=200_000))
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            parse_bounded("slow.html", deep_html(100_000), patient)
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    _wait_for(lambda: bool(_parsers()), "a parsing process")
    [process] = _parsers()
    stop_parsing()
    reader.join()
    assert len(outcome) == 1 and isinstance(outcome[0], Unavailable)
    assert _ended(process)


def test_a_parsing_process_whose_caller_is_gone_ends_at_its_deadline() -> None:
    caller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from app.core.config import ParseSettings\n"
            "from app.retriever.parsing import ParseLimits, parse_bounded\n"
            "from tests.utils.hostile_files import deep_html\n"
            "limits = ParseLimits.from_settings("
            "ParseSettings(timeout_s=5, max_html_depth=200_000, workers=1))\n"
            "parse_bounded('warm.txt', b'warm', limits)\n"
            "print('ready', flush=True)\n"
            "parse_bounded('slow.html', deep_html(100_000), limits)\n",
        ],
        cwd=BACKEND_DIR,
        stdout=subprocess.PIPE,
    )
    try:
        assert caller.stdout is not None and caller.stdout.readline() == b"ready\n"
        [process] = psutil.Process(caller.pid).children()
        busy_from = process.cpu_times().user
        _wait_for(lambda: process.cpu_times().user > busy_from + 0.05, "the slow file to be read")
        caller.kill()
    finally:
        caller.wait()
        assert caller.stdout is not None
        caller.stdout.close()
    # Its caller never killed it; its own alarm does, a few seconds past the deadline.
    assert _ended(process)


def test_the_indexer_reads_under_the_limits_it_was_built_with(
    store_factory: StoreFactory,
) -> None:
    embedder = HashEmbedder(dimension=64)
    store = store_factory(dimension=embedder.dimension, embedder_name=embedder.name)
    settings = RetrievalSettings(chunk_size=200, chunk_overlap=0)
    indexer = Indexer(store, embedder, settings, parse_limits=LIMITS)
    [indexed] = indexer.ingest_bytes("short.txt", "짧은 문서입니다.".encode())
    assert indexed.outcome == "indexed"
    with pytest.raises(TooLarge) as refused:
        indexer.ingest_bytes("long.txt", ("긴 글. " * 300).encode())
    assert refused.value.code == "document_too_long"
