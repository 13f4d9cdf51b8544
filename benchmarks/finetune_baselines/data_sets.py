"""The fine-tuning benchmark's two data sets, and their examples as `rag finetune train` makes them.

Both hold the same first 2,000 NSMC reviews:

``nsmc``    the TSV as it is: the prompt says only the rating, so ten prompts cover every review
            and shared-prompt packing computes each prompt once per group of same-rating reviews;
``titled``  JSONL where each review's prompt also names its movie (``대상: 영화 <movie_id>``): the
            2,000 reviews come from 1,760 movies, so prompts (rating and movie) almost never repeat
            and sharing finds almost nothing to share.

The examples every trainer trains on are the ones `rag finetune train` tokenises: a one-step run
writes its tokenised cache, and ``export_examples`` turns that into JSONL of token ids and prompt
lengths for the baselines' drivers, so all trainers see the same tokens.
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class DataSet:
    """One data file and the `rag finetune train` flags that read it."""

    name: str
    path: Path
    flags: tuple[str, ...]


def build_data_sets(nsmc: Path, reviews: int, work: Path) -> list[DataSet]:
    """Write the first ``reviews`` NSMC reviews as the ``nsmc`` TSV and the ``titled`` JSONL."""
    with gzip.open(nsmc, "rt", encoding="utf-8", newline="") as f:
        lines = [next(f) for _ in range(reviews + 1)]
    tsv = work / "nsmc.tsv"
    tsv.write_text("".join(lines), encoding="utf-8")
    titled = work / "titled.jsonl"
    rows = csv.reader(lines[1:], delimiter="\t", quoting=csv.QUOTE_NONE)
    with titled.open("w", encoding="utf-8") as out:
        for row in rows:
            if len(row) != 4:
                continue
            _, movie_id, rating, text = row
            record = {
                "review": text,
                "rating": int(rating),
                "subject": f"영화 {movie_id}",
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return [
        DataSet("nsmc", tsv, ()),
        DataSet(
            "titled",
            titled,
            (
                "--data-format",
                "jsonl",
                "--subject-column",
                "subject",
                "--rating-scale",
                "10",
            ),
        ),
    ]


def export_examples(cache_dir: Path, out: Path) -> dict[str, int]:
    """The tokenised examples in ``cache_dir`` as JSONL (``input_ids``, ``prompt_len``); counts."""
    (cached,) = cache_dir.glob("examples-*.npz")
    with np.load(cached) as arrays:
        ids, offsets = arrays["input_ids"], arrays["offsets"]
        prompt_lengths, keys = arrays["prompt_lengths"], arrays["prompt_keys"]
    with out.open("w", encoding="utf-8") as f:
        for i, prompt_len in enumerate(prompt_lengths.tolist()):
            example = ids[offsets[i] : offsets[i + 1]].tolist()
            f.write(json.dumps({"input_ids": example, "prompt_len": prompt_len}) + "\n")
    return {
        "examples": len(prompt_lengths),
        "tokens": int(offsets[-1]),
        "reply_tokens": int(offsets[-1] - prompt_lengths.sum()),
        "prompts": len(np.unique(keys)),
    }
