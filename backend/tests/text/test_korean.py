"""Kiwi-based search tokens and sentence splitting, on real Korean text (NSMC reviews, KorQuAD)."""

from __future__ import annotations

import itertools
import re
from concurrent.futures import ThreadPoolExecutor

from app.retriever.chunking import chunk_analysed
from app.text.korean import analyse, get_kiwi, search_tokens
from tests.utils.documents import korquad_paragraphs, nsmc_reviews


def test_search_tokens_keep_content_morphemes_and_drop_particles() -> None:
    tokens = search_tokens("도서관은 오전 9시에 문을 엽니다. 주말에는 닫습니다.")
    # 시 (a unit, a dependent noun) goes with the particles: it matches every time of day.
    assert tokens == ["도서관", "오전", "9", "문", "열", "주말", "닫"]


def test_search_tokens_keep_english_numbers_and_hanja_usable() -> None:
    tokens = search_tokens(
        "PostgreSQL 16과 pgvector로 RAG를 만들었다. 漢字 표기, 버전 3.11, URL은 https://example.com/docs"
    )
    assert {
        "postgresql",
        "16",
        "pgvector",
        "rag",
        "漢字",
        "3.11",
        "https://example.com/docs",
    } <= set(tokens)
    assert "만들" in tokens
    assert all(t == t.lower() for t in tokens)


def test_search_tokens_of_nothing() -> None:
    assert search_tokens("") == []
    assert search_tokens("  \n\t ") == []
    assert search_tokens("?!...") == []


def test_reviews_never_yield_particles_endings_or_punctuation() -> None:
    reviews = nsmc_reviews(300)
    function_words = {
        "은",
        "는",
        "을",
        "를",
        "에서",
        "에게",
        "습니다",
        "어요",
        "었",
        ".",
        "!",
        "?",
        "ㅋㅋ",
    }
    tokens = [search_tokens(review) for review in reviews]
    assert sum(bool(t) for t in tokens) >= 0.95 * len(reviews)
    assert not function_words & {t for review in tokens for t in review}
    assert "영화" in {t for review in tokens for t in review}


def test_one_analysis_gives_each_chunk_the_tokens_of_analysing_it_alone() -> None:
    """The indexer takes a chunk's tokens from the analysis of its whole document.

    Kiwi reads a sentence in context, so a chunk that starts inside a long sentence, or that holds
    several paragraphs, may now and then be analysed a little differently alone.
    """
    texts = [context for context, _ in korquad_paragraphs(60)] + ["\n\n".join(nsmc_reviews(80))]
    exact, overlaps = 0, []
    for text in texts:
        analysis = analyse(text)
        assert analysis.token_starts == sorted(analysis.token_starts)
        for chunk in chunk_analysed(text, analysis, size=300, overlap=60):
            ours, alone = analysis.tokens_in(chunk.start, chunk.end), search_tokens(chunk.text)
            exact += ours == alone
            overlaps.append(len(set(ours) & set(alone)) / len(set(ours) | set(alone)))
    assert len(overlaps) > 100
    assert exact / len(overlaps) > 0.95
    assert min(overlaps) > 0.9
    assert analyse("  \n ") == analyse("")


def test_questions_share_tokens_with_their_paragraph() -> None:
    """What BM25 relies on: a question and the paragraph that answers it meet on morphemes."""
    shared = []
    for context, questions in korquad_paragraphs(40):
        context_tokens = set(search_tokens(context))
        shared += [len(set(search_tokens(q)) & context_tokens) for q in questions]
    assert len(shared) > 100
    assert sum(n >= 2 for n in shared) / len(shared) > 0.95


def test_threads_share_one_analyser_safely() -> None:
    reviews = nsmc_reviews(200)
    expected = [search_tokens(r) for r in reviews]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(search_tokens, reviews)) == expected
    assert get_kiwi() is get_kiwi()


def test_split_sentences_of_korquad_paragraphs_cover_the_text_in_order() -> None:
    for context, _ in korquad_paragraphs(30):
        spans = analyse(context).sentences
        assert len(spans) > 1
        assert all(0 <= s < e <= len(context) for s, e in spans)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
        # Nothing but whitespace between sentences: the splitter loses no text.
        assert re.sub(r"\s", "", "".join(context[s:e] for s, e in spans)) == re.sub(
            r"\s", "", context
        )


def split_sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in analyse(text).sentences]


def test_split_sentences_of_mixed_korean_and_english() -> None:
    text = "RAG는 검색 증강 생성입니다. It retrieves passages first. Then it answers! 한국어로도 답합니다."
    assert split_sentences(text) == [
        "RAG는 검색 증강 생성입니다.",
        "It retrieves passages first.",
        "Then it answers!",
        "한국어로도 답합니다.",
    ]


def test_split_sentences_keeps_korean_dates_and_decimals_whole() -> None:
    assert split_sentences("2024. 3. 1.에 버전 3.11이 나왔다.") == [
        "2024. 3. 1.에 버전 3.11이 나왔다."
    ]


def test_split_sentences_never_crosses_a_blank_line() -> None:
    sentences = split_sentences("제목 없는 첫 문단\n\n   \n둘째 문단의 첫 문장. 둘째 문장.")
    assert sentences == ["제목 없는 첫 문단", "둘째 문단의 첫 문장.", "둘째 문장."]


def test_split_sentences_on_empty_and_unpunctuated_long_text() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\n ") == []
    long_text = "끝없이 이어지는 문장 " * 2000
    [sentence] = split_sentences(long_text)
    assert sentence == long_text.strip()
