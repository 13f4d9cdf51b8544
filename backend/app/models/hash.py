"""The offline default embedder: feature-hashed words and character n-grams, Hangul-aware.

No model, no download, the same vector in every process. It catches shared words and word
pieces, which is most of what keyword-heavy Korean questions need; a trained model
(sentence-transformers, OpenAI) captures meaning beyond shared spelling.

Features of one text, after NFC normalisation and lower-casing, for each word (``\\w+``):

- the word itself;
- in Hangul words, 1-3-grams of syllables, so ``도서관에서`` and ``도서관은`` share ``도서관``;
- in Hangul words, 3-4-grams of the jamo (NFD) spelling, so conjugated forms (``빌려``, ``빌릴``)
  share their stem's consonants and vowels;
- in other words, 3-grams of the word between boundary marks (``<apple>`` → ``<ap``, ``app`` ...).

Each feature is hashed with unkeyed BLAKE2b (stable, unlike ``hash()``) into a signed bucket,
counts are damped (``1 + ln tf``) and the vector is L2-normalised. Changing any of this must
change ``VERSION``: the name ``hash-v1:{dimension}`` is stored with the index, and vectors of two
versions do not mix.

A batch is embedded at once: each distinct word of it is hashed once (and remembered), then
counting, weighting and bucketing run as numpy operations over every feature of the batch.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from hashlib import blake2b

import numpy as np

VERSION = 1

_WORD = re.compile(r"\w+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Families get distinct prefixes so that, say, the word "가" and the syllable "가" are two features.
_WORD_PREFIX, _SYLLABLE_PREFIX, _JAMO_PREFIX, _CHAR_PREFIX = "w\x1f", "s\x1f", "j\x1f", "c\x1f"
# A text without any word still gets a unit vector: cosine distance to a zero vector is undefined.
_EMPTY_FEATURE = "e\x1f"
_SIGN_BIT = np.uint64(1 << 63)


def _ngrams(prefix: str, text: str, low: int, high: int) -> list[str]:
    size = len(text)
    return [
        prefix + text[start : start + n]
        for n in range(low, min(high, size) + 1)
        for start in range(size - n + 1)
    ]


def _word_features(word: str) -> list[str]:
    found = [_WORD_PREFIX + word]
    if _HANGUL.search(word):
        found += _ngrams(_SYLLABLE_PREFIX, word, 1, 3)
        found += _ngrams(_JAMO_PREFIX, unicodedata.normalize("NFD", word), 3, 4)
    elif len(word) > 3:
        found += _ngrams(_CHAR_PREFIX, f"<{word}>", 3, 3)
    return found


# Syllable and jamo n-grams recur across many different words.
@lru_cache(maxsize=1 << 18)
def _digest(feature: str) -> bytes:
    """The feature's hash: 8 bytes of BLAKE2b, read as a little-endian unsigned integer."""
    return blake2b(feature.encode("utf-8"), digest_size=8).digest()


def _hashes(features: Sequence[str]) -> np.ndarray:
    return np.frombuffer(b"".join(map(_digest, features)), dtype="<u8").astype(np.uint64)


# Words repeat across a corpus, so their hashed features are worth remembering.
@lru_cache(maxsize=1 << 16)
def _word_hashes(word: str) -> np.ndarray:
    return _hashes(_word_features(word))


_EMPTY_HASHES = _hashes([_EMPTY_FEATURE])
# Stands for the one feature of a text without words; no word (``\w+``) is empty.
_NO_WORD = ""


def _feature_occurrences(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, hashes)``: one entry per feature occurrence of the texts, ``rows`` its text."""
    index: dict[str, int] = {}
    occurrences: list[int] = []
    words_per_text: list[int] = []
    for text in texts:
        words = _WORD.findall(unicodedata.normalize("NFC", text).lower()) or [_NO_WORD]
        occurrences += [index.setdefault(word, len(index)) for word in words]
        words_per_text.append(len(words))
    pieces = [_EMPTY_HASHES if word == _NO_WORD else _word_hashes(word) for word in index]
    lengths = np.fromiter(map(len, pieces), dtype=np.intp, count=len(pieces))
    pool = np.concatenate(pieces)
    word_starts = np.cumsum(lengths) - lengths
    occurrence = np.asarray(occurrences, dtype=np.intp)
    spans = lengths[occurrence]
    # Gather each occurrence's run of hashes from the pool: position i of the output reads
    # pool[start of its word + i - start of its run].
    run_starts = np.cumsum(spans) - spans
    positions = np.arange(int(spans.sum())) + np.repeat(word_starts[occurrence] - run_starts, spans)
    rows = np.repeat(np.repeat(np.arange(len(texts)), words_per_text), spans)
    return rows, pool[positions]


class HashEmbedder:
    """Feature-hashing embedder; deterministic across processes and machines."""

    def __init__(self, dimension: int = 768) -> None:
        if dimension < 8:
            raise ValueError("the hash embedder needs at least 8 dimensions")
        self._dimension = dimension

    @property
    def name(self) -> str:
        """``hash-v{VERSION}:{dimension}``, recorded with the index."""
        return f"hash-v{VERSION}:{self._dimension}"

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        return self._dimension

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a ``(len(texts), dimension)`` float32 array of unit rows."""
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        rows, hashes = _feature_occurrences(texts)
        # Sorted by text, then hash: each text's distinct features in ascending order, the
        # order in which their weights are summed into buckets, one text at a time.
        order = np.lexsort((hashes, rows))
        rows, hashes = rows[order], hashes[order]
        first = np.ones(len(hashes), dtype=bool)
        first[1:] = (hashes[1:] != hashes[:-1]) | (rows[1:] != rows[:-1])
        starts = np.flatnonzero(first)
        counts = np.diff(np.append(starts, len(hashes)))
        rows, hashes = rows[starts], hashes[starts]
        weights = np.where(hashes & _SIGN_BIT, -1.0, 1.0) * (1.0 + np.log(counts))
        buckets = (hashes % np.uint64(self._dimension)).astype(np.intp)
        cells = rows * self._dimension + buckets
        matrix = np.bincount(cells, weights, minlength=len(texts) * self._dimension).reshape(
            len(texts), self._dimension
        )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        # Signed features can cancel out exactly; such a row stays zero rather than dividing by 0.
        np.divide(matrix, norms, out=matrix, where=norms > 0)
        return matrix.astype(np.float32)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed passages for storage."""
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query (the same way as a passage: hashing has no query side)."""
        return self.embed_array([text])[0].tolist()

    def close(self) -> None:
        """Nothing to release."""
