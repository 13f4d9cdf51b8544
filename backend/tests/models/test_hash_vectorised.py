"""The batched hash embedder gives exactly the vectors of the one-text-at-a-time algorithm.

The reference below is the embedder as it was before batching, kept verbatim: vectors stored
by it must keep matching queries embedded now, so equality is bit for bit, not approximate.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from hashlib import blake2b

import numpy as np
import pytest

from app.models.hash import HashEmbedder
from tests.utils.documents import korquad_paragraphs, nsmc_reviews

_WORD_PREFIX, _SYLLABLE_PREFIX, _JAMO_PREFIX, _CHAR_PREFIX = "w\x1f", "s\x1f", "j\x1f", "c\x1f"
_SIGN_BIT = np.uint64(1 << 63)


def _reference_ngrams(text: str, low: int, high: int) -> Iterable[str]:
    for n in range(low, min(high, len(text)) + 1):
        for start in range(len(text) - n + 1):
            yield text[start : start + n]


def _reference_features(word: str) -> list[str]:
    found = [_WORD_PREFIX + word]
    if re.search(r"[\uac00-\ud7a3]", word):
        found += (_SYLLABLE_PREFIX + g for g in _reference_ngrams(word, 1, 3))
        found += (
            _JAMO_PREFIX + g for g in _reference_ngrams(unicodedata.normalize("NFD", word), 3, 4)
        )
    elif len(word) > 3:
        found += (_CHAR_PREFIX + g for g in _reference_ngrams(f"<{word}>", 3, 3))
    return found


def _reference_hash(feature: str) -> int:
    return int.from_bytes(blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")


def _reference_text_hashes(text: str) -> np.ndarray:
    words = re.findall(r"\w+", unicodedata.normalize("NFC", text).lower())
    if not words:
        return np.array([_reference_hash("e\x1f")], dtype=np.uint64)
    return np.concatenate(
        [
            np.array([_reference_hash(f) for f in _reference_features(w)], dtype=np.uint64)
            for w in words
        ]
    )


def reference_embed(texts: Sequence[str], dimension: int) -> np.ndarray:
    """The embedder before batching: one text, one ``np.unique`` and one ``bincount`` at a time."""
    matrix = np.zeros((len(texts), dimension), dtype=np.float64)
    for row, text in enumerate(texts):
        hashes, counts = np.unique(_reference_text_hashes(text), return_counts=True)
        weights = np.where(hashes & _SIGN_BIT, -1.0, 1.0) * (1.0 + np.log(counts))
        buckets = (hashes % np.uint64(dimension)).astype(np.intp)
        matrix[row] = np.bincount(buckets, weights, minlength=dimension)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix.astype(np.float32)


EDGE_CASES = [
    "",
    "   \n\t ",
    "!!! ... ???",
    "a",
    "가",
    "도서관에서 도서관은 도서관 도서관",
    unicodedata.normalize("NFD", "빌려 빌릴 빌려서 한국어 자모"),
    "Apple apple APPLE <apple> XR-7700 e-mail@example.com 2024. 3. 1.",
    "混合 漢字 ひらがな カタカナ 한글 English 123 ½ ① ﬁ",
    "ㅋㅋㅋㅋㅋ ㅠㅠ ^^ 굿굿굿 최고최고최고",
    "반복 " * 300,
    "아주긴단어" * 40,
]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """Real reviews and encyclopedia paragraphs, with the edge cases among them."""
    reviews = nsmc_reviews(3000)
    paragraphs = [context for context, _ in korquad_paragraphs(40)]
    texts = reviews + paragraphs
    for i, case in enumerate(EDGE_CASES):
        texts.insert(i * 97, case)
    return texts


@pytest.mark.parametrize("dimension", [768, 64, 101, 8])
def test_batches_give_the_reference_vectors_bit_for_bit(corpus: list[str], dimension: int) -> None:
    embedder = HashEmbedder(dimension=dimension)
    expected = reference_embed(corpus, dimension)
    for size in (1, 7, 64, 1000, len(corpus)):
        batches = [embedder.embed_array(corpus[i : i + size]) for i in range(0, len(corpus), size)]
        got = np.concatenate(batches)
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.array_equal(got, expected), f"batches of {size} differ"


def test_documents_and_queries_are_the_reference_vectors(corpus: list[str]) -> None:
    embedder = HashEmbedder(dimension=256)
    texts = corpus[:200]
    expected = reference_embed(texts, 256)
    assert embedder.embed_documents(texts) == expected.tolist()
    for text, vector in zip(texts[:50], expected[:50], strict=True):
        assert embedder.embed_query(text) == vector.tolist()


def test_an_empty_batch_and_texts_without_words() -> None:
    embedder = HashEmbedder(dimension=32)
    assert embedder.embed_array([]).shape == (0, 32)
    vectors = embedder.embed_array(["", "!!!", "단어"])
    assert np.array_equal(vectors, reference_embed(["", "!!!", "단어"], 32))
    # A text without words still gets a unit vector, the same one whatever its punctuation.
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0)
    assert np.array_equal(vectors[0], vectors[1])
