"""Reading every review format, cleaning, balancing, and turning reviews into masked chat examples."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from app.core.errors import InvalidInput, NotFound
from app.finetune.examples import prepare_examples, tokenize_reviews
from app.finetune.prompts import render_review_prompt
from app.hf.chat_template import chat_template_for
from app.recipes.data import DataOptions, detect_format, load_reviews


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_nsmc_tsv_keeps_quotes_and_counts_what_it_drops(tmp_path: Path) -> None:
    path = write(
        tmp_path / "reviews.tsv",
        "review_id\tmovie_id\trating\treview\n"
        '1\t10\t8\t"따뜻함" 많이 느끼면서 삽시다!\n'
        "2\t10\t1\t  기자들만   좋아하는 영화 \n"
        "3\t10\tten\t별점이 글자다\n"
        "4\t10\t5\n"
        "5\t11\t10\t\n"
        "6\t11\t9\t기자들만 좋아하는 영화\n"
        f"7\t11\t10\t{'가' * 301}\n"
        "8\t11\t11\t범위 밖 별점\n",
    )
    reviews, report = load_reviews(path, DataOptions())
    assert report.data_format == "nsmc-tsv" and report.rating_scale == 10
    assert [(r.rating, r.text) for r in sorted(reviews, key=lambda r: r.rating)] == [
        (1, "기자들만 좋아하는 영화"),
        (8, '"따뜻함" 많이 느끼면서 삽시다!'),
    ]
    assert report.read == 6 and report.kept == 2
    assert dict(report.dropped) == {
        "broken_line": 2,
        "empty": 1,
        "duplicate": 1,
        "too_long": 1,
        "rating_out_of_scale": 1,
    }
    assert "broken_line" in report.summary()


def test_gzipped_shared_nsmc_sample(nsmc_train: Path) -> None:
    reviews, report = load_reviews(nsmc_train, DataOptions(max_examples=500))
    assert report.data_format == "nsmc-tsv" and report.rating_scale == 10
    assert len(reviews) == 500 and report.read == 200_000
    assert set(report.ratings) <= set(range(1, 11))


def test_nsmc_raw_folder_with_a_broken_file(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    records = [
        {"review": "최고의 영화", "rating": "10", "movie_id": "1", "author": "a"},
        {"review": "그냥 그래요", "rating": "5", "movie_id": "1", "author": "b"},
        {"review": "별점 없음", "movie_id": "1"},
    ]
    write(folder / "1.json", json.dumps(records, ensure_ascii=False))
    write(folder / "2.json", '[{"review": "잘림", "rating": "3"')
    with gzip.open(folder / "3.json.gz", "wt", encoding="utf-8") as f:
        json.dump([{"review": "압축된 리뷰", "rating": "2"}], f, ensure_ascii=False)
    reviews, report = load_reviews(folder, DataOptions())
    assert detect_format(folder) == "nsmc-raw"
    assert sorted(r.rating for r in reviews) == [2, 5, 10]
    assert dict(report.dropped) == {"broken_file": 1, "broken_line": 1}


def test_naver_shopping_detects_five_star_scale(tmp_path: Path) -> None:
    path = write(
        tmp_path / "shopping.txt",
        "5\t배송 빠르고 좋아요\n1\t최악입니다 환불 원해요\nx\t깨진 줄\n4\t무난해요\t탭이 더 있음\n2\t별로\n",
    )
    reviews, report = load_reviews(path, DataOptions())
    assert report.data_format == "naver-shopping" and report.rating_scale == 5
    assert sorted(r.rating for r in reviews) == [1, 2, 5]
    assert report.dropped["broken_line"] == 2


def test_jsonl_with_named_columns_and_subject(tmp_path: Path) -> None:
    path = write(
        tmp_path / "reviews.jsonl",
        '{"text": "재밌어요", "stars": 9, "title": "인셉션"}\n'
        "{broken\n"
        '{"text": "별로예요", "stars": "2"}\n'
        '{"text": 3, "stars": 2}\n',
    )
    options = DataOptions(text_column="text", rating_column="stars", subject_column="title")
    reviews, report = load_reviews(path, options)
    assert {(r.text, r.rating, r.subject) for r in reviews} == {
        ("재밌어요", 9, "인셉션"),
        ("별로예요", 2, None),
    }
    assert report.dropped["broken_line"] == 2


def test_csv_with_named_columns_and_a_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path / "reviews.csv", 'body,score\n"좋다, 정말 좋다",5\n나쁘다,1\n깨진,\n')
    reviews, report = load_reviews(path, DataOptions(text_column="body", rating_column="score"))
    assert sorted((r.rating, r.text) for r in reviews) == [(1, "나쁘다"), (5, "좋다, 정말 좋다")]
    assert report.rating_scale == 5 and report.dropped["broken_line"] == 1
    with pytest.raises(InvalidInput, match="no column rating, review"):
        load_reviews(path, DataOptions())


def test_declared_scale_drops_ratings_above_it(tmp_path: Path) -> None:
    path = write(tmp_path / "s.txt", "5\t좋아요\n8\t범위 밖\n")
    reviews, report = load_reviews(path, DataOptions(rating_scale=5))
    assert [r.rating for r in reviews] == [5]
    assert report.dropped["rating_out_of_scale"] == 1


def test_balance_downsamples_to_the_rarest_rating(nsmc_sample: Path) -> None:
    _, skewed = load_reviews(nsmc_sample, DataOptions())
    reviews, report = load_reviews(nsmc_sample, DataOptions(balance=True, seed=1))
    rarest = min(skewed.ratings.values())
    assert set(report.ratings.values()) == {rarest}
    assert len(reviews) == rarest * len(skewed.ratings)
    assert report.dropped["balanced_out"] == skewed.kept - len(reviews)


def test_unreadable_inputs_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_reviews(tmp_path / "missing.tsv", DataOptions())
    with pytest.raises(InvalidInput, match="no usable reviews"):
        load_reviews(write(tmp_path / "bad.txt", "a\tb\nc\td\n"), DataOptions())
    with pytest.raises(InvalidInput, match="--data-format"):
        detect_format(write(tmp_path / "odd.txt", "one column only\n"))


def test_examples_train_only_on_the_reply(tiny_model_dir: Path, nsmc_sample: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    reviews, report = load_reviews(nsmc_sample, DataOptions(max_examples=50))
    examples = tokenize_reviews(
        reviews,
        tokenizer,
        rating_scale=10,
        chat_template=chat_template_for(tokenizer),
        max_seq_len=512,
        report=report,
    )
    assert len(examples) == 50
    for index in (0, 17):
        ids, prompt_len = examples.example(index)
        review = reviews[index]
        prompt = tokenizer.decode(ids[:prompt_len])
        assert prompt == render_review_prompt(tokenizer, review.rating, 10)
        assert "Today Date" not in prompt
        assert tokenizer.decode(ids[prompt_len:]) == review.text + "<|eot_id|>"


def test_examples_over_the_length_limit_are_dropped_and_reported(
    tiny_model_dir: Path, nsmc_sample: Path
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    reviews, report = load_reviews(nsmc_sample, DataOptions())
    template = chat_template_for(tokenizer)
    examples = tokenize_reviews(
        reviews, tokenizer, rating_scale=10, chat_template=template, max_seq_len=100, report=report
    )
    assert 0 < len(examples) < len(reviews)
    assert report.dropped["over_max_seq_len"] == len(reviews) - len(examples)
    assert int(examples.lengths.max()) <= 100


def test_tokenised_examples_are_cached(
    tmp_path: Path, tiny_model_dir: Path, nsmc_sample: Path
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = chat_template_for(tokenizer)

    def prepare(options: DataOptions):
        return prepare_examples(
            nsmc_sample,
            options,
            tokenizer,
            chat_template=template,
            max_seq_len=256,
            cache_dir=tmp_path,
        )

    first = prepare(DataOptions())
    (cached,) = tmp_path.glob("examples-*.npz")
    stamp = cached.stat().st_mtime_ns
    again = prepare(DataOptions())
    assert cached.stat().st_mtime_ns == stamp
    assert again.cache_key == first.cache_key and again.data_hash == first.data_hash
    assert (again.examples.input_ids == first.examples.input_ids).all()
    assert again.report.to_dict() == first.report.to_dict()
    other = prepare(DataOptions(balance=True))
    assert other.cache_key != first.cache_key
    assert len(list(tmp_path.glob("examples-*.npz"))) == 2
