"""Extractive answers on KorQuAD 1.0 (dev, part A) through the HTTP API: found, refused, quoted.

Indexes every paragraph as ``benchmarks/retrieval.py`` does and asks every question through
``POST /api/chat`` with the offline ``extractive`` answerer, then 50 off-topic questions (weather,
prices, recipes, errands) that no paragraph answers. Reports the share of KorQuAD questions whose
answer string is in the reply, the share of off-topic questions that get the "documents do not
answer" reply, how long replies are and how many quote one text twice.

The relevance floor is checked by split halves. Each reply comes back with its sources, so every
floor of a sweep is applied offline with the answerer's own ``select_quotes`` and
``render_answer``; the floor that is best on one half (KorQuAD split by article, the off-topic
questions by position) is scored on the other. "Best" is the mean of the two shares, found and
refused. At the default floor the offline replies equal the API's (checked on every question).
Writes its table into docs/benchmarks.md.

    make bench-extractive           # or: .venv/bin/python benchmarks/extractive.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from app.models.extractive import RELEVANCE_FLOOR, Quote, render_answer, select_quotes
from app.models.rag_format import NO_ANSWER_KO, PromptSource
from benchmarks_report import replace_section
from retrieval import KORQUAD, korquad_api, load_korquad

FLOORS = tuple(round(f / 20, 2) for f in range(17))
# The same measurement on commit 3fc63f7, before the floor, the duplicate check and table rows.
BEFORE = "| none (before, 3fc63f7) | 0.907 | 0.000 | 0.000 | 167 | 288 |"
_QUOTE = re.compile(r"(.+?) \[(\d+)\]", re.DOTALL)
# Questions of daily life that an encyclopedia's paragraphs cannot answer.
OFF_TOPIC = (
    "오늘 서울 날씨 어때?",
    "내일 부산에 비가 오나요?",
    "이번 주말 제주도 날씨 알려줘",
    "지금 바깥 기온이 몇 도야?",
    "오늘 미세먼지 농도는 어때?",
    "삼성전자 주가는 지금 얼마인가요?",
    "오늘 코스피 지수는 몇 포인트야?",
    "원달러 환율이 지금 얼마죠?",
    "테슬라 주식을 지금 사도 될까요?",
    "김치찌개 맛있게 끓이는 법 알려줘",
    "된장찌개에 들어가는 재료는 뭐야?",
    "계란말이를 부드럽게 만드는 방법은?",
    "떡볶이 양념 비율 좀 알려줘",
    "파스타 면은 몇 분 삶아야 하나요?",
    "강남역 근처 맛집 추천해줘",
    "오늘 저녁 메뉴 뭐 먹을까?",
    "감기에 걸렸을 때 먹으면 좋은 음식은?",
    "두통이 심할 때 어떤 약을 먹어야 하나요?",
    "허리 통증에 좋은 스트레칭 알려줘",
    "하루에 물을 몇 잔 마셔야 해?",
    "다이어트할 때 저녁은 몇 시까지 먹어야 하나요?",
    "서울역에서 인천공항까지 가는 방법은?",
    "지하철 2호선 막차는 몇 시야?",
    "택시 기본요금이 얼마예요?",
    "주차 위반 과태료는 얼마인가요?",
    "자동차 엔진오일은 언제 교체해야 하나요?",
    "노트북 배터리를 오래 쓰는 법 알려줘",
    "아이폰 화면이 안 켜질 때 어떻게 해?",
    "와이파이 비밀번호를 바꾸는 방법은?",
    "엑셀에서 VLOOKUP 함수는 어떻게 써?",
    "강아지 사료는 하루에 몇 번 줘야 해?",
    "고양이가 밥을 안 먹으면 어떻게 하나요?",
    "화분에 물은 얼마나 자주 줘야 하나요?",
    "빨래에서 나는 냄새를 없애는 방법 알려줘",
    "겨울철 난방비 아끼는 방법은?",
    "전세 계약할 때 주의할 점은?",
    "연말정산 환급금은 언제 들어와요?",
    "주문한 택배가 아직 안 왔는데 어디에 문의하나요?",
    "이번 달 카드값이 얼마 나왔지?",
    "여자친구 생일 선물로 뭐가 좋을까?",
    "친구 결혼식 축의금은 얼마가 적당해?",
    "주말에 아이와 가볼 만한 곳 추천해줘",
    "헬스장 한 달 이용료는 보통 얼마야?",
    "영어 회화 실력을 빨리 늘리는 방법은?",
    "운전면허 필기시험 준비는 어떻게 해?",
    "이번 주 로또 당첨 번호 알려줘",
    "캠핑 갈 때 챙겨야 할 준비물은?",
    "잠이 안 올 때 빨리 잠드는 방법은?",
    "회사 근처 카페는 몇 시에 문을 열어?",
    "세탁기 통 세척은 어떻게 하나요?",
)


@dataclass(frozen=True)
class Case:
    """One question asked, what the API replied and what a floor sweep needs."""

    question: str
    answers: list[str]
    """Gold answer strings; empty for an off-topic question."""
    half: int
    reply: str
    quotes: list[Quote]


def korquad_answers(path: Path) -> list[list[str]]:
    """Gold answer strings of every question, in ``load_korquad``'s order."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [
        [answer["text"] for answer in qa["answers"]]
        for article in data
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def ask(client: httpx.Client, question: str, answers: list[str], half: int) -> Case:
    """The API's reply, and the answerer's quotes for the same sources before any floor."""
    response = client.post("/api/chat", json={"question": question})
    response.raise_for_status()
    body = response.json()
    sources = [
        PromptSource(s["number"], s["title"], s["text"]) for s in body["sources"]
    ]
    return Case(
        question, answers, half, body["answer"], select_quotes(question, sources)
    )


def shares(cases: list[Case], floor: float) -> tuple[float, float]:
    """Found (KorQuAD answer string in the reply) and refused (off-topic) shares at ``floor``."""
    found = refused = answerable = off_topic = 0
    for case in cases:
        reply = render_answer(case.question, case.quotes, floor)
        if case.answers:
            answerable += 1
            found += any(a in reply for a in case.answers)
        else:
            off_topic += 1
            refused += reply == NO_ANSWER_KO
    return found / max(answerable, 1), refused / max(off_topic, 1)


def quotes_a_text_twice(reply: str) -> bool:
    """Whether two quotes of the reply are the same text (whitespace aside)."""
    texts = [" ".join(text.split()) for text, _ in _QUOTE.findall(reply)]
    return len(texts) != len(set(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="ask only the first N questions"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only, leave docs/ alone"
    )
    args = parser.parse_args()
    logging.getLogger("rag").setLevel(logging.WARNING)

    documents, questions = load_korquad(KORQUAD)
    answers = korquad_answers(KORQUAD)
    # Document ids are kq-<article>-<paragraph>: the halves split by article.
    asked = [
        (question, gold_answers, int(gold.split("-")[1]) % 2)
        for (question, gold), gold_answers in zip(questions, answers, strict=True)
    ][: args.limit]
    asked += [(question, [], i % 2) for i, question in enumerate(OFF_TOPIC)]
    with korquad_api(documents) as indexed:
        cases = [ask(indexed.client, *question) for question in asked]
    mismatches = sum(
        render_answer(c.question, c.quotes, RELEVANCE_FLOOR) != c.reply for c in cases
    )
    if mismatches:
        sys.exit(f"the offline replies differ from the API's on {mismatches} questions")

    korquad = [c for c in cases if c.answers]
    found, refused = shares(cases, RELEVANCE_FLOOR)
    wrongly_refused = sum(c.reply == NO_ANSWER_KO for c in korquad) / len(korquad)
    lengths = [len(c.reply) for c in korquad if c.reply != NO_ANSWER_KO]
    twice = sum(quotes_a_text_twice(c.reply) for c in cases)
    lines = [
        (
            f"{len(korquad)} KorQuAD questions and {len(OFF_TOPIC)} off-topic ones (weather, prices, "
            "recipes, errands: in `benchmarks/extractive.py`) through `POST /api/chat` with "
            "`LLM_PROVIDER=extractive`, on the index of `make bench-retrieval` (hybrid, top 5 chunks). "
            "*Found*: the gold answer string is in the reply. *Refused*: the reply is "
            f"“{NO_ANSWER_KO}”, with no citation."
        ),
        "",
        (
            "| relevance floor | found (KorQuAD) | refused (off-topic) | refused (KorQuAD) "
            "| median reply (chars) | replies quoting a text twice |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        BEFORE,
        (
            f"| {RELEVANCE_FLOOR:.2f} (default) | {found:.3f} | {refused:.3f} "
            f"| {wrongly_refused:.3f} | {statistics.median(lengths):.0f} | {twice} |"
        ),
        "",
        (
            "Split-half check of the floor: the best floor (mean of found and refused) on one half, "
            "scored on the other. A = even-numbered articles and off-topic questions, B = odd."
        ),
        "",
        "| floor | found A | refused A | found B | refused B |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    by_half = {
        floor: [shares([c for c in cases if c.half == half], floor) for half in (0, 1)]
        for floor in FLOORS
    }
    lines += [
        f"| {floor:.2f} | {a[0]:.3f} | {a[1]:.3f} | {b[0]:.3f} | {b[1]:.3f} |"
        for floor, (a, b) in by_half.items()
    ]
    lines += ["", "| tuned on | best floor there | found / refused on the other half |"]
    lines += ["| --- | ---: | --- |"]
    for tuned, scored, name in ((0, 1, "A"), (1, 0, "B")):
        best = max(FLOORS, key=lambda f: sum(by_half[f][tuned]))
        other = by_half[best][scored]
        lines.append(f"| {name} | {best:.2f} | {other[0]:.3f} / {other[1]:.3f} |")
    lines += [
        "",
        (
            "The offline sweep equals the API's replies on every question at the default floor. "
            "Reproduce: `make bench-extractive`. Data: KorQuAD 1.0, Lim et al., 2019, CC BY-ND 2.0 KR."
        ),
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_write and not args.limit:
        replace_section("Extractive answers: KorQuAD 1.0 dev, part A", table)


if __name__ == "__main__":
    main()
