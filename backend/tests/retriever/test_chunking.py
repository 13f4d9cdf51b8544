"""Sentence-packing chunker: exact offsets, whole sentences, overlap, paragraphs, overlong sentences."""

from __future__ import annotations

import itertools
import re

import pytest

from app.core.errors import InvalidInput
from app.retriever.chunking import TextChunk, chunk_text
from app.text.korean import analyse
from tests.utils.documents import korquad_paragraphs


def _korquad_text(count: int) -> str:
    return "\n\n".join(context for context, _ in korquad_paragraphs(count))


def _assert_well_formed(text: str, chunks: list[TextChunk], size: int) -> None:
    assert chunks
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text and chunk.text == chunk.text.strip()
        assert len(chunk.text) <= size
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    # Together the chunks hold every character of the text but whitespace.
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))


def test_korquad_chunks_are_exact_slices_of_whole_sentences() -> None:
    text = _korquad_text(15)
    chunks = chunk_text(text, size=500, overlap=100)
    _assert_well_formed(text, chunks, 500)
    sentences = analyse(text).sentences
    starts = {s for s, _ in sentences}
    ends = {e for _, e in sentences}
    # KorQuAD sentences are shorter than 500 characters, so no chunk cuts one.
    assert all(c.start in starts and c.end in ends for c in chunks)
    assert sum(len(c.text) for c in chunks) / len(chunks) > 300


def test_overlap_repeats_about_the_requested_length_of_whole_sentences() -> None:
    text = _korquad_text(15)
    chunks = chunk_text(text, size=500, overlap=100)
    overlaps = [a.end - b.start for a, b in itertools.pairwise(chunks) if b.start < a.end]
    assert len(overlaps) > len(chunks) // 2
    assert 50 <= sum(overlaps) / len(overlaps) <= 200
    for a, b in itertools.pairwise(chunks):
        assert b.start > a.start and b.end > a.end


def test_no_overlap_when_none_is_asked() -> None:
    text = _korquad_text(10)
    chunks = chunk_text(text, size=400, overlap=0)
    _assert_well_formed(text, chunks, 400)
    assert all(b.start >= a.end for a, b in itertools.pairwise(chunks))


def test_short_text_is_one_chunk_and_nothing_is_no_chunk() -> None:
    assert chunk_text("  짧은 문서입니다.\n", size=100, overlap=10) == [
        TextChunk("짧은 문서입니다.", 2, 11)
    ]
    assert chunk_text("", size=100, overlap=10) == []
    assert chunk_text(" \n\n\t ", size=100, overlap=10) == []


def test_a_paragraph_that_would_straddle_starts_a_new_chunk() -> None:
    first = "첫 문단의 첫 문장입니다. 첫 문단의 둘째 문장입니다. 첫 문단의 마지막 문장입니다."
    second = "둘째 문단은 새 주제로 시작합니다. 둘째 문단의 둘째 문장입니다. 둘째 문단의 끝입니다."
    text = f"{first}\n\n{second}"
    chunks = chunk_text(text, size=70, overlap=0)
    assert [c.text for c in chunks] == [first, second]


def test_paragraphs_that_fit_together_share_a_chunk() -> None:
    text = "짧은 문단 하나.\n\n짧은 문단 둘.\n\n짧은 문단 셋."
    assert [c.text for c in chunk_text(text, size=100, overlap=0)] == [text]


def test_overlong_sentence_is_cut_between_words() -> None:
    words = [f"단어{i:03d}" for i in range(300)]
    text = " ".join(words) + "."
    chunks = chunk_text(text, size=120, overlap=0)
    _assert_well_formed(text, chunks, 120)
    assert len(chunks) > 10
    assert all(min(len(c.text), 120) > 60 for c in chunks[:-1])
    pieces = [w for c in chunks for w in c.text.rstrip(".").split(" ")]
    assert pieces == words


def test_overlong_text_without_spaces_is_cut_at_the_size() -> None:
    text = "가" * 250
    chunks = chunk_text(text, size=100, overlap=20)
    assert [(c.start, c.end) for c in chunks] == [(0, 100), (100, 200), (200, 250)]


def test_overlong_line_is_cut_at_a_line_break_first() -> None:
    rows = [f"항목{i} 값{i}" for i in range(60)]
    text = "\n".join(rows)
    chunks = chunk_text(text, size=100, overlap=0)
    _assert_well_formed(text, chunks, 100)
    assert all(re.fullmatch(r"(항목\d+ 값\d+\n?)+", c.text) for c in chunks)


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_nonsense_settings_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(InvalidInput):
        chunk_text("문장입니다.", size=size, overlap=overlap)
