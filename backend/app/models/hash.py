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
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
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


def _ngrams(text: str, low: int, high: int) -> Iterable[str]:
    for n in range(low, min(high, len(text)) + 1):
        for start in range(len(text) - n + 1):
            yield text[start : start + n]


def _word_features(word: str) -> list[str]:
    found = [_WORD_PREFIX + word]
    if _HANGUL.search(word):
        found += (_SYLLABLE_PREFIX + g for g in _ngrams(word, 1, 3))
        found += (_JAMO_PREFIX + g for g in _ngrams(unicodedata.normalize("NFD", word), 3, 4))
    elif len(word) > 3:
        found += (_CHAR_PREFIX + g for g in _ngrams(f"<{word}>", 3, 3))
    return found


# Syllable and jamo n-grams recur across many different words.
@lru_cache(maxsize=1 << 18)
def _stable_hash(feature: str) -> int:
    return int.from_bytes(blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")


# Words repeat across a corpus, so their hashed features are worth remembering.
@lru_cache(maxsize=1 << 16)
def _word_hashes(word: str) -> np.ndarray:
    return np.array([_stable_hash(f) for f in _word_features(word)], dtype=np.uint64)


_EMPTY_HASHES = np.array([_stable_hash(_EMPTY_FEATURE)], dtype=np.uint64)


def _text_hashes(text: str) -> np.ndarray:
    """One hash per feature occurrence of ``text``."""
    words = _WORD.findall(unicodedata.normalize("NFC", text).lower())
    return np.concatenate([_word_hashes(w) for w in words]) if words else _EMPTY_HASHES


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
        matrix = np.zeros((len(texts), self._dimension), dtype=np.float64)
        for row, text in enumerate(texts):
            hashes, counts = np.unique(_text_hashes(text), return_counts=True)
            weights = np.where(hashes & _SIGN_BIT, -1.0, 1.0) * (1.0 + np.log(counts))
            buckets = (hashes % np.uint64(self._dimension)).astype(np.intp)
            matrix[row] = np.bincount(buckets, weights, minlength=self._dimension)
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
