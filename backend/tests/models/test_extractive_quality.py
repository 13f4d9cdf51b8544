"""What the extractive answerer quotes: nothing for an off-topic question, each text once, one
sentence of a long passage, one row of a table."""

from __future__ import annotations

import asyncio

from app.models.extractive import NO_ANSWER_EN, ExtractiveLLM
from app.models.rag_format import NO_ANSWER_KO, PromptSource
from app.pipelines.prompts import build_messages
from app.pipelines.rag import cited_numbers

SEOUL_LIBRARIES = (
    "서울도서관은 서울시청 옛 청사에 있습니다. 서울도서관은 평일 오전 9시에 문을 엽니다.\n\n"
    "서울의 구립 도서관은 모두 180곳입니다. 서울 시민은 누구나 회원증을 만들 수 있습니다."
)
SEOUL_LIBRARIES_EN = (
    "Seoul Library is in the old Seoul City Hall. Seoul Library opens at nine on weekdays. "
    "Seoul has 180 district libraries. Anyone living in Seoul can get a library card."
)
LIBRARY = (
    "중앙도서관은 평일 오전 9시부터 오후 10시까지 문을 엽니다. 주말에는 오후 5시에 문을 닫습니다. "
    "책은 한 번에 다섯 권까지 2주 동안 빌릴 수 있습니다."
)
CAFETERIA = "학생식당은 지하 1층에 있습니다. 점심은 11시 30분부터 제공됩니다."
HANDBOOK = (
    "회사는 1998년 판교에서 작은 소프트웨어 회사로 출발했습니다. 처음 다섯 해 동안은 은행의 전산 "
    "시스템을 유지보수하는 일이 매출의 대부분을 차지했습니다. 2005년에는 첫 자체 제품인 문서 관리 "
    "솔루션을 내놓았고, 이 제품이 공공기관에 널리 쓰이면서 회사가 크게 자랐습니다. 지금은 직원이 "
    "300명이 넘고, 서울과 부산, 대전에 사무소를 두고 있습니다. 신입 사원은 입사 첫 주에 회사의 역사와 "
    "제품, 보안 규정에 대한 교육을 받습니다. 교육은 인사팀이 맡으며, 마지막 날에는 간단한 평가가 "
    "있습니다. 모든 직원은 매년 정보보호 교육을 네 시간 이상 이수해야 합니다. 출장비는 출장을 다녀온 "
    "뒤 일주일 안에 영수증과 함께 경영지원팀에 청구합니다. 사내 동호회는 다섯 명 이상이 모이면 만들 "
    "수 있고, 회사가 한 사람당 한 달에 2만 원까지 활동비를 지원합니다. 재택근무는 팀장의 승인을 받아 "
    "일주일에 이틀까지 할 수 있습니다. 노트북과 모니터는 입사할 때 지급되며, 퇴사할 때 반납합니다. "
    "사내 식당은 본사 지하 1층에 있고 점심은 11시 30분부터 1시 30분까지 제공됩니다. 주차장은 "
    "방문객에게 두 시간까지 무료로 열려 있습니다. 건강검진은 2년에 한 번 회사 비용으로 받을 수 있으며, "
    "가족도 할인된 가격으로 함께 받을 수 있습니다."
)
CHECKLIST = "\n".join(
    f"- {item}"
    for item in (
        "사무실 열쇠는 총무팀에서 받아 가고 퇴근할 때 경비실에 맡겨 주세요",
        "복사기 토너가 떨어지면 총무팀 내선 2040으로 연락해 주세요",
        "회의실 예약은 사내 포털의 회의실 메뉴에서 하루 전까지 해 주세요",
        "택배는 1층 안내데스크에서 오후 6시까지 찾아갈 수 있어요",
        "사내 와이파이 비밀번호는 매달 첫 번째 월요일에 바뀌어요",
        "분리수거는 매주 화요일과 금요일 저녁에 지하 2층에서 해요",
        "명함 신청은 인사팀 양식으로 접수하면 일주일 뒤에 나와요",
        "법인카드 영수증은 사용한 날로부터 사흘 안에 올려 주세요",
        "야근 식대는 오후 9시 이후까지 일한 날에만 청구할 수 있어요",
        "보안 카드를 잃어버리면 곧바로 보안팀 내선 3000으로 알려 주세요",
        "휴가 신청은 사흘 전까지 전자결재로 올려 주세요",
        "사내 도서는 한 번에 세 권까지 2주 동안 빌릴 수 있어요",
    )
)
LEAVE_TABLE = (
    "직급별 연차 휴가\n"
    "직급 | 연차 일수 | 비고\n"
    "사원 | 15일 | 입사 1년 후부터\n"
    "대리 | 16일 | -\n"
    "과장 | 18일 | 관리직\n"
    "부장 | 20일 | 관리직"
)
PRICE_SHEET = (
    "품목\t단가\t재고\n복사용지\t4500원\t120상자\n토너\t89000원\t7개\n스테이플러\t6000원\t30개"
)


def _answer(question: str, *texts: str) -> str:
    sources = [PromptSource(i, f"문서{i}", t) for i, t in enumerate(texts, start=1)]
    return asyncio.run(ExtractiveLLM().complete(build_messages(question, sources)))


def test_off_topic_question_gets_the_plain_no_answer_without_citations() -> None:
    # 서울 is in every passage: it proves nothing; 날씨 is in none.
    for question in ("오늘 서울 날씨 어때?", "서울 날씨 알려줘"):
        answer = _answer(question, SEOUL_LIBRARIES, LIBRARY)
        assert answer == NO_ANSWER_KO
        assert cited_numbers(answer, 2) == []
    answer = _answer("What is the weather in Seoul today?", SEOUL_LIBRARIES_EN)
    assert answer == NO_ANSWER_EN


def test_the_same_passages_still_answer_what_they_hold() -> None:
    answer = _answer("서울도서관은 몇 시에 문을 여나요?", SEOUL_LIBRARIES, LIBRARY)
    assert answer.startswith("서울도서관은 평일 오전 9시에 문을 엽니다. [1]")
    answer = _answer("When does Seoul Library open on weekdays?", SEOUL_LIBRARIES_EN)
    assert answer.startswith("Seoul Library opens at nine on weekdays. [1]")


def test_a_passage_under_two_numbers_is_quoted_once_citing_the_first() -> None:
    respaced = LIBRARY.replace("오후 5시에", "오후  5시에").replace("닫습니다.", "닫습니다!")
    answer = _answer("주말에는 몇 시에 닫나요?", CAFETERIA, LIBRARY, LIBRARY, respaced)
    assert answer.count("문을 닫습니다") == 1
    assert cited_numbers(answer, 4) == [2]


def test_overlapping_chunks_quote_their_shared_sentence_once() -> None:
    first, second = LIBRARY[:60], LIBRARY[33:]
    answer = _answer("주말에는 몇 시에 닫나요?", first, second)
    assert answer.count("주말에는 오후 5시에 문을 닫습니다.") == 1


def test_a_long_chunk_gives_only_the_sentence_that_answers() -> None:
    assert len(HANDBOOK) > 600
    answer = _answer("출장비는 언제까지 어디에 청구하나요?", HANDBOOK)
    assert answer == (
        "출장비는 출장을 다녀온 뒤 일주일 안에 영수증과 함께 경영지원팀에 청구합니다. [1]"
    )


def test_a_long_list_without_sentence_ends_gives_only_its_matching_line() -> None:
    assert len(CHECKLIST) > 300
    answer = _answer("보안 카드를 잃어버리면 어디로 연락하나요?", CHECKLIST)
    assert "보안 카드를 잃어버리면 곧바로 보안팀 내선 3000으로 알려 주세요" in answer
    assert "복사기" not in answer and "택배" not in answer
    assert len(answer) < 300


def test_a_table_gives_only_the_matching_row_with_its_header() -> None:
    answer = _answer("과장의 연차 일수는 며칠인가요?", LEAVE_TABLE)
    assert answer == "직급: 과장 | 연차 일수: 18일 | 비고: 관리직 [1]"


def test_a_tab_separated_sheet_gives_only_the_matching_row() -> None:
    answer = _answer("토너 단가는 얼마인가요?", PRICE_SHEET, CAFETERIA)
    assert answer == "품목: 토너 | 단가: 89000원 | 재고: 7개 [1]"


def test_a_table_that_does_not_answer_contributes_nothing() -> None:
    answer = _answer("주말에는 몇 시에 닫나요?", LEAVE_TABLE, LIBRARY)
    assert answer == "주말에는 오후 5시에 문을 닫습니다. [2]"
    assert "|" not in _answer("연차 휴가는 며칠까지 이월되나요?", LEAVE_TABLE)
