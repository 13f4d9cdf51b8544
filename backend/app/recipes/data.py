"""Review data: read the Naver review formats, clean them, balance ratings, report what was dropped.

Formats (``--data-format``):

- ``nsmc-tsv``: ``review_id<TAB>movie_id<TAB>rating<TAB>review`` with a header; quotes are literal.
- ``nsmc-raw``: the public NSMC crawl, a folder of per-movie JSON files, each a list of
  ``{"review", "rating" ("1".."10"), "movie_id", ...}`` (a single such file works too).
- ``naver-shopping``: ``rating<TAB>review`` per line, ratings 1-5.
- ``jsonl`` / ``csv``: one review per line or row; columns named by ``text_column`` /
  ``rating_column`` (and optionally ``subject_column``).

Any file may be gzip-compressed (``.gz``). A broken line or file is skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from app.core.errors import InvalidInput, NotFound
from app.recipes.settings_fields import option

DataFormat = Literal["auto", "nsmc-tsv", "nsmc-raw", "naver-shopping", "jsonl", "csv"]
DATA_FORMATS: tuple[str, ...] = ("auto", "nsmc-tsv", "nsmc-raw", "naver-shopping", "jsonl", "csv")
# The argument group of ``rag finetune train --help`` the options appear in.
_DATA = "data"
_NSMC_HEADER = ["review_id", "movie_id", "rating", "review"]
_WHITESPACE = re.compile(r"\s+")
# Scales fixed by the corpus; generic JSONL/CSV are detected from the largest rating.
_FORMAT_SCALES = {"nsmc-tsv": 10, "nsmc-raw": 10, "naver-shopping": 5}


@dataclass(frozen=True, slots=True)
class Review:
    """One cleaned review with its star rating (and what it reviews, when known)."""

    text: str
    rating: int
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class DataOptions:
    """How reviews are read, cleaned and balanced; every field changes the resulting data."""

    data_format: DataFormat = field(
        default="auto", metadata=option(group=_DATA, help="default auto")
    )
    text_column: str = field(
        default="review",
        metadata=option(group=_DATA, help="jsonl/csv: review column (default {default})"),
    )
    rating_column: str = field(
        default="rating",
        metadata=option(group=_DATA, help="jsonl/csv: rating column (default {default})"),
    )
    subject_column: str | None = field(
        default=None, metadata=option(group=_DATA, help="jsonl/csv: movie or product name column")
    )
    rating_scale: int | None = field(
        default=None, metadata=option(group=_DATA, choices=(5, 10), help="default: detected")
    )
    """Declared scale (5 or 10); ``None``: the corpus's own, or detected from the largest rating."""
    min_chars: int = 1
    balance: bool = field(
        default=False,
        metadata=option(group=_DATA, help="down-sample every rating to the rarest one's count"),
    )
    """Down-sample every rating to the count of the rarest one (raw NSMC has 43% ten-star reviews)."""
    max_per_rating: int | None = field(
        default=None, metadata=option(group=_DATA, help="keep at most N reviews per rating")
    )
    max_chars: int = field(
        default=300,
        metadata=option(
            group=_DATA, flag="max-review-chars", help="drop longer reviews (default {default})"
        ),
    )
    """Longer reviews are dropped: they are rare, and one would fill a packed sequence alone."""
    max_examples: int | None = field(
        default=None, metadata=option(group=_DATA, help="use at most N reviews")
    )
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rating_scale is not None and self.rating_scale < 2:
            raise InvalidInput(f"rating_scale must be at least 2, got {self.rating_scale}")
        for name in ("min_chars", "max_chars", "max_per_rating", "max_examples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidInput(f"{name} must be at least 1, got {value}")


@dataclass
class DataReport:
    """What was read, what was kept, and why the rest was dropped."""

    data_format: str
    rating_scale: int = 0
    read: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    ratings: dict[int, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items())) or "none"
        return (
            f"{self.data_format}: read {self.read}, kept {self.kept} "
            f"(scale 1-{self.rating_scale}); dropped: {dropped}"
        )

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready copy."""
        return {
            "data_format": self.data_format,
            "rating_scale": self.rating_scale,
            "read": self.read,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "ratings": {str(k): v for k, v in sorted(self.ratings.items())},
        }


def data_fingerprint(path: Path) -> str:
    """SHA-256 over the bytes of the data file (or every file of a folder, in name order)."""
    digest = hashlib.sha256()
    for file in _data_files(path):
        digest.update(file.name.encode())
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def detect_format(path: Path) -> str:
    """Guess the format from the path and the first line."""
    if path.is_dir():
        return "nsmc-raw"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".json"):
        return "nsmc-raw"
    if name.endswith(".csv"):
        return "csv"
    with _open_text(path) as f:
        first = f.readline().rstrip("\r\n")
    columns = first.split("\t")
    if columns == _NSMC_HEADER or len(columns) == 4:
        return "nsmc-tsv"
    if len(columns) == 2:
        return "naver-shopping"
    raise InvalidInput(
        f"cannot tell the format of {path.name}; pass --data-format (one of {', '.join(DATA_FORMATS[1:])})"
    )


def load_reviews(path: Path, options: DataOptions) -> tuple[list[Review], DataReport]:
    """Read, clean, de-duplicate and optionally balance the reviews in ``path``."""
    if not path.exists():
        raise NotFound(f"no such data file or folder: {path}")
    fmt = detect_format(path) if options.data_format == "auto" else options.data_format
    report = DataReport(data_format=fmt)
    raw = list(_read(path, fmt, options, report))
    report.read += len(raw)
    report.rating_scale = _rating_scale(raw, options.rating_scale or _FORMAT_SCALES.get(fmt))

    reviews: list[Review] = []
    seen: set[str] = set()
    for rating, text, subject in raw:
        text = _WHITESPACE.sub(" ", text).strip()
        if not 1 <= rating <= report.rating_scale:
            report.dropped["rating_out_of_scale"] += 1
        elif len(text) < max(options.min_chars, 1):
            report.dropped["empty" if not text else "too_short"] += 1
        elif len(text) > options.max_chars:
            report.dropped["too_long"] += 1
        elif text in seen:
            report.dropped["duplicate"] += 1
        else:
            seen.add(text)
            reviews.append(Review(text, rating, subject.strip() if subject else None))

    reviews = _sample(reviews, options, report)
    report.kept = len(reviews)
    report.ratings = dict(sorted(Counter(r.rating for r in reviews).items()))
    if not reviews:
        raise InvalidInput(f"no usable reviews in {path}: {report.summary()}")
    return reviews, report


def _sample(reviews: list[Review], options: DataOptions, report: DataReport) -> list[Review]:
    """Balance or cap per rating, then cap the total; the order is shuffled with the seed."""
    rng = random.Random(options.seed)
    by_rating: dict[int, list[Review]] = {}
    for review in reviews:
        by_rating.setdefault(review.rating, []).append(review)
    cap = options.max_per_rating
    if options.balance:
        rarest = min(len(group) for group in by_rating.values())
        cap = rarest if cap is None else min(cap, rarest)
    kept: list[Review] = []
    for rating in sorted(by_rating):
        group = by_rating[rating]
        if cap is not None and len(group) > cap:
            report.dropped["balanced_out"] += len(group) - cap
            group = rng.sample(group, cap)
        kept += group
    rng.shuffle(kept)
    if options.max_examples is not None and len(kept) > options.max_examples:
        report.dropped["over_max_examples"] += len(kept) - options.max_examples
        kept = kept[: options.max_examples]
    return kept


def _rating_scale(raw: list[tuple[int, str, str | None]], declared: int | None) -> int:
    if declared is not None:
        if declared not in (5, 10):
            raise InvalidInput(f"rating scale must be 5 or 10, got {declared}")
        return declared
    if not raw:
        raise InvalidInput("no reviews could be read from the data")
    highest = max(rating for rating, _, _ in raw)
    if highest <= 5:
        return 5
    if highest <= 10:
        return 10
    raise InvalidInput(f"ratings go up to {highest}; declare the scale with --rating-scale 5|10")


RawReview = tuple[int, str, str | None]


def _read(path: Path, fmt: str, options: DataOptions, report: DataReport) -> Iterator[RawReview]:
    match fmt:
        case "nsmc-tsv":
            return _read_nsmc_tsv(path, report)
        case "nsmc-raw":
            return _read_nsmc_raw(path, report)
        case "naver-shopping":
            return _read_shopping(path, report)
        case "jsonl":
            return _read_jsonl(path, options, report)
        case "csv":
            return _read_csv(path, options, report)
    raise InvalidInput(f"unknown data format {fmt!r}; choose one of {', '.join(DATA_FORMATS)}")


def _read_nsmc_tsv(path: Path, report: DataReport) -> Iterator[RawReview]:
    with _open_text(path) as f:
        for number, line in enumerate(f):
            columns = line.rstrip("\r\n").split("\t")
            if number == 0 and columns == _NSMC_HEADER:
                continue
            rating = _parse_rating(columns[2]) if len(columns) == 4 else None
            if rating is None:
                report.dropped["broken_line"] += 1
                continue
            yield rating, columns[3], None


def _read_shopping(path: Path, report: DataReport) -> Iterator[RawReview]:
    with _open_text(path) as f:
        for line in f:
            columns = line.rstrip("\r\n").split("\t")
            rating = _parse_rating(columns[0]) if len(columns) == 2 else None
            if rating is None:
                report.dropped["broken_line"] += 1
                continue
            yield rating, columns[1], None


def _read_nsmc_raw(path: Path, report: DataReport) -> Iterator[RawReview]:
    for file in _data_files(path):
        try:
            with _open_text(file) as f:
                records = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            report.dropped["broken_file"] += 1
            continue
        if not isinstance(records, list):
            report.dropped["broken_file"] += 1
            continue
        yield from _records(records, "review", "rating", None, report)


def _read_jsonl(path: Path, options: DataOptions, report: DataReport) -> Iterator[RawReview]:
    with _open_text(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                report.dropped["broken_line"] += 1
                continue
            yield from _records(
                [record], options.text_column, options.rating_column, options.subject_column, report
            )


def _read_csv(path: Path, options: DataOptions, report: DataReport) -> Iterator[RawReview]:
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        missing = {options.text_column, options.rating_column} - set(reader.fieldnames or [])
        if missing:
            raise InvalidInput(
                f"{path.name} has no column {', '.join(sorted(missing))}; "
                f"columns are {', '.join(reader.fieldnames or [])} (see --text-column/--rating-column)"
            )
        try:
            rows = list(reader)
        except csv.Error as exc:
            raise InvalidInput(f"{path.name} is not readable as CSV: {exc}") from exc
        yield from _records(
            rows, options.text_column, options.rating_column, options.subject_column, report
        )


def _records(
    records: Iterable[object],
    text_key: str,
    rating_key: str,
    subject_key: str | None,
    report: DataReport,
) -> Iterator[RawReview]:
    for record in records:
        if not isinstance(record, dict):
            report.dropped["broken_line"] += 1
            continue
        text, rating = record.get(text_key), _parse_rating(record.get(rating_key))
        if not isinstance(text, str) or rating is None:
            report.dropped["broken_line"] += 1
            continue
        subject = record.get(subject_key) if subject_key else None
        yield rating, text, subject if isinstance(subject, str) else None


def _parse_rating(value: object) -> int | None:
    """An integer rating from ``"8"``, ``8`` or ``8.0``; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if number.is_integer() else None
    return None


def _data_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and ".json" in p.name.lower())
        if not files:
            raise InvalidInput(f"{path} holds no .json files")
        return files
    return [path]


def _open_text(path: Path) -> IO[str]:
    """Open as UTF-8 text (a BOM is skipped), transparently gunzipping ``.gz`` files."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(
            gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace", newline=""
        )
    return path.open(encoding="utf-8-sig", errors="replace", newline="")
