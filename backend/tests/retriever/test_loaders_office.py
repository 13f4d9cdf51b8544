"""PowerPoint and Excel files written by python-pptx and openpyxl: slides and sheets as pages."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from datetime import datetime

import openpyxl
import pptx
import pytest
from openpyxl.chart import BarChart, Reference
from pptx.presentation import Presentation
from pptx.shapes.shapetree import GroupShapes, SlideShapes
from pptx.slide import Slide
from pptx.table import Table
from pptx.util import Inches

from app.core.config import RetrievalSettings
from app.core.errors import InvalidInput, TooLarge, Unsupported
from app.models.hash import HashEmbedder
from app.retriever.indexer import Indexer
from app.retriever.loaders import LoadedDocument, load_documents
from app.retriever.loaders import xlsx as xlsx_loader
from app.retriever.loaders.common import MAX_EXPANDED_BYTES
from app.retriever.loaders.pptx import load_pptx
from app.retriever.loaders.xlsx import load_xlsx
from app.retriever.vector_store import PGVectorStore
from app.text.korean import search_tokens
from tests.conftest import StoreFactory
from tests.utils.documents import korquad_paragraphs, make_docx, make_pdf

# Layouts of python-pptx's default template.
TITLE_SLIDE, TITLE_AND_CONTENT, TITLE_ONLY, BLANK = 0, 1, 5, 6


def _only(filename: str, data: bytes) -> LoadedDocument:
    [document] = load_documents(filename, data)
    return document


def _pages(document: LoadedDocument) -> list[str]:
    """The text of each page, as ``page_starts`` cuts it."""
    ends = [*document.page_starts[1:], len(document.text)]
    return [
        document.text[start:end].strip()
        for start, end in zip(document.page_starts, ends, strict=True)
    ]


def _saved(document: Presentation | openpyxl.Workbook) -> bytes:
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _with_member(data: bytes, name: str, change: Callable[[bytes], bytes]) -> bytes:
    """The same zip with member ``name`` rewritten by ``change``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info, change(content) if info.filename == name else content)
    return out.getvalue()


# ------------------------------------------------------------------------------------ pptx


def _deck(core_title: str = "") -> Presentation:
    deck = pptx.Presentation()
    deck.core_properties.title = core_title
    return deck


def _text_box(shapes: SlideShapes | GroupShapes, text: str, top: float) -> None:
    shapes.add_textbox(Inches(1), Inches(top), Inches(6), Inches(1)).text_frame.text = text


def _table(slide: Slide, rows: Sequence[Sequence[str]]) -> Table:
    shape = slide.shapes.add_table(
        len(rows), len(rows[0]), Inches(1), Inches(2), Inches(6), Inches(2)
    )
    for cells, row in zip(rows, shape.table.rows, strict=True):
        for text, cell in zip(cells, row.cells, strict=True):
            cell.text = text
    return shape.table


def test_pptx_slides_are_pages_with_titles_text_tables_groups_and_notes() -> None:
    deck = _deck(core_title="속성 제목")
    cover = deck.slides.add_slide(deck.slide_layouts[TITLE_SLIDE])
    cover.shapes.title.text = "2024년 인사 규정"
    cover.placeholders[1].text = "인사팀"
    content = deck.slides.add_slide(deck.slide_layouts[TITLE_AND_CONTENT])
    content.shapes.title.text = "휴가 제도"
    body = content.placeholders[1].text_frame
    body.text = "연차는 입사 첫해에 매달 하루씩 생깁니다."
    # "\v" is a line break inside the paragraph.
    body.add_paragraph().text = "병가는 진단서가 있으면\v연간 열흘까지 씁니다."
    content.notes_slide.notes_text_frame.text = "발표자 노트: 질문을 받습니다."
    deck.slides.add_slide(deck.slide_layouts[BLANK])
    tables = deck.slides.add_slide(deck.slide_layouts[TITLE_ONLY])
    tables.shapes.title.text = "표"
    table = _table(tables, [["구분", "일수", ""], ["연차", "15일", "유급"], ["", "", ""]])
    table.cell(0, 1).merge(table.cell(0, 2))
    group = tables.shapes.add_group_shape()
    _text_box(group.shapes, "그룹 안의 글상자", 5)
    _text_box(group.shapes.add_group_shape().shapes, "그룹 속 그룹", 6)

    document = _only("규정.pptx", _saved(deck))
    assert document.title == "2024년 인사 규정"
    assert document.metadata == {"slide_count": 4}
    assert _pages(document) == [
        "2024년 인사 규정\n\n인사팀",
        "휴가 제도\n\n연차는 입사 첫해에 매달 하루씩 생깁니다.\n병가는 진단서가 있으면\n"
        "연간 열흘까지 씁니다.\n\n발표자 노트: 질문을 받습니다.",
        "",
        "표\n\n구분 | 일수\n연차 | 15일 | 유급\n\n그룹 안의 글상자\n\n그룹 속 그룹",
    ]
    # The empty third slide begins where the fourth does: no text maps to it.
    assert document.page_starts[2] == document.page_starts[3]


def test_pptx_title_falls_back_to_the_title_property_then_the_file_name() -> None:
    deck = _deck(core_title="  분기\n보고서 ")
    _text_box(deck.slides.add_slide(deck.slide_layouts[BLANK]).shapes, "제목 없는 슬라이드", 1)
    assert _only("a.pptx", _saved(deck)).title == "분기 보고서"
    deck.core_properties.title = ""
    assert _only("발표 자료.pptx", _saved(deck)).title == "발표 자료"


@pytest.mark.parametrize("slides", [0, 2], ids=["no-slides", "blank-slides"])
def test_pptx_without_text_is_invalid_input(slides: int) -> None:
    deck = _deck()
    for _ in range(slides):
        deck.slides.add_slide(deck.slide_layouts[TITLE_AND_CONTENT])
    with pytest.raises(InvalidInput, match="no text to index"):
        load_documents("빈 발표.pptx", _saved(deck))


def _one_slide_deck() -> bytes:
    deck = _deck()
    deck.slides.add_slide(deck.slide_layouts[TITLE_ONLY]).shapes.title.text = "슬라이드 제목"
    return _saved(deck)


def test_damaged_pptx_is_invalid_input() -> None:
    data = _one_slide_deck()
    with pytest.raises(InvalidInput, match="damaged"):
        load_documents("잘린.pptx", data[: len(data) // 2])
    broken = _with_member(data, "ppt/slides/slide1.xml", lambda xml: xml[: len(xml) // 2])
    with pytest.raises(InvalidInput, match="could not be read as a PowerPoint deck"):
        load_documents("깨진.pptx", broken)


# ------------------------------------------------------------------------------------ xlsx


def test_xlsx_sheets_are_pages_of_rows_under_their_names() -> None:
    workbook = openpyxl.Workbook()
    staff = workbook.active
    staff.title = "직원 명단"
    staff.append(["이름", "부서", None, "입사일", "재직"])
    staff.append(["김철수", "인사", None, datetime(2024, 3, 12), True])
    staff.append([])
    staff.append([None, "  여러\n줄의   셀 ", None, datetime(2024, 3, 12, 9, 30), False])
    staff["H20"] = "멀리 떨어진 셀"
    workbook.create_sheet("빈 시트")
    budget = workbook.create_sheet("예산")
    budget.append(["항목", "금액", "비율"])
    budget.append(["인건비", 1_500_000, 0.25])
    budget.append(["합계", 6_000_000.0, 1.5])
    budget.merge_cells("A5:C5")
    budget["A5"] = "병합된 셀"
    chart = BarChart()
    chart.add_data(Reference(budget, min_col=2, min_row=1, max_row=3))
    workbook.create_chartsheet("차트").add_chart(chart)
    workbook.create_sheet("끝").append(["마지막 시트"])
    workbook.properties.title = "2024 예산"

    document = _only("예산.xlsx", _saved(workbook))
    assert document.title == "2024 예산"
    assert document.metadata == {"sheet_count": 5}
    assert _pages(document) == [
        "직원 명단\n이름 | 부서 | 입사일 | 재직\n김철수 | 인사 | 2024-03-12 | TRUE\n"
        "여러 줄의 셀 | 2024-03-12 09:30:00 | FALSE\n멀리 떨어진 셀",
        "",
        "예산\n항목 | 금액 | 비율\n인건비 | 1500000 | 0.25\n합계 | 6000000 | 1.5\n병합된 셀",
        "",
        "끝\n마지막 시트",
    ]
    workbook.properties.title = None
    assert _only("부서별 예산.xlsx", _saved(workbook)).title == "부서별 예산"


def test_xlsx_formulas_read_as_their_cached_values() -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["단가", "수량", "금액"])
    sheet.append([1200, 3, "=A2*B2"])
    sheet.append([500, 2, "=A3*B3"])
    data = _saved(workbook)
    # Excel stores the last result next to each formula; openpyxl writes none.
    cached = _with_member(
        data,
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(b"<f>A2*B2</f><v></v>", b"<f>A2*B2</f><v>3600</v>"),
    )
    assert _only("견적.xlsx", cached).text == "Sheet\n단가 | 수량 | 금액\n1200 | 3 | 3600\n500 | 2"


def _tall_sheet(last_row: int) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.active.title = "시트 이름"
    workbook.active["A1"] = "첫 셀"
    workbook.active.cell(last_row, 1, "마지막 셀")
    return _saved(workbook)


def test_xlsx_over_the_cell_cap_is_too_large() -> None:
    # Rows 2 to 1,048,575 are not in the file; reading still steps over each of them.
    with pytest.raises(TooLarge, match="more than 1,000,000 cells"):
        load_documents("큰 시트.xlsx", _tall_sheet(1_048_576))


def test_xlsx_cell_cap_counts_every_sheet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsx_loader, "MAX_CELLS", 40)
    workbook = openpyxl.Workbook()
    for name in ("가", "나"):
        sheet = workbook.create_sheet(name)
        for row in range(5):
            sheet.append([f"{name}{row}-{column}" for column in range(4)])
    data = _saved(workbook)
    assert _pages(_only("딱 맞음.xlsx", data))[
        1
    ] == "가\n가0-0 | 가0-1 | 가0-2 | 가0-3\n" + "\n".join(
        f"가{row}-0 | 가{row}-1 | 가{row}-2 | 가{row}-3" for row in range(1, 5)
    )
    workbook.create_sheet("다").append(["한 칸 더"])
    with pytest.raises(TooLarge, match="more than 40 cells"):
        load_documents("넘침.xlsx", _saved(workbook))


def test_xlsx_declared_dimension_is_not_trusted() -> None:
    workbook = openpyxl.Workbook()
    for row in range(1, 101):
        workbook.active.cell(row, 1, f"{row}번째 줄")
    # Taken at its word, a dimension of the whole grid pads each of the 100 rows to 16,384 cells.
    data = _with_member(
        _saved(workbook),
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(b'<dimension ref="A1:A100"/>', b'<dimension ref="A1:XFD1048576"/>'),
    )
    assert b"A1:XFD1048576" in zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    assert _only("주장.xlsx", data).text == "Sheet\n" + "\n".join(
        f"{row}번째 줄" for row in range(1, 101)
    )


def test_damaged_xlsx_is_invalid_input() -> None:
    data = _tall_sheet(2)
    with pytest.raises(InvalidInput, match="damaged"):
        load_documents("잘린.xlsx", data[: len(data) // 2])
    broken = _with_member(data, "xl/worksheets/sheet1.xml", lambda xml: xml[: len(xml) // 2])
    with pytest.raises(InvalidInput, match="could not be read as an Excel workbook"):
        load_documents("깨진.xlsx", broken)


# ------------------------------------------------------------------------- both formats


def _plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("보고서.txt", "압축 파일 안의 글")
    return out.getvalue()


# Excel and PowerPoint 97-2003 files are OLE compound files.
OLE_FILE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504


@pytest.mark.parametrize(
    ("loader", "data"),
    [
        (load_pptx, make_docx(["워드 문서"])),
        (load_pptx, _tall_sheet(2)),
        (load_pptx, make_pdf(["PDF입니다"])),
        (load_pptx, _plain_zip()),
        (load_pptx, OLE_FILE),
        (load_xlsx, make_docx(["워드 문서"])),
        (load_xlsx, _one_slide_deck()),
        (load_xlsx, make_pdf(["PDF입니다"])),
        (load_xlsx, _plain_zip()),
        (load_xlsx, OLE_FILE),
    ],
    ids=[
        *(f"{kind}-as-pptx" for kind in ("docx", "xlsx", "pdf", "zip", "ole")),
        *(f"{kind}-as-xlsx" for kind in ("docx", "pptx", "pdf", "zip", "ole")),
    ],
)
def test_content_that_is_not_the_loaders_format_is_unsupported(
    loader: Callable[[str, bytes], list[LoadedDocument]], data: bytes
) -> None:
    with pytest.raises(Unsupported, match="not a"):
        loader("report", data)


@pytest.mark.parametrize("filename", ["report.pptx", "table.xlsx"])
def test_zip_that_is_neither_is_unsupported(filename: str) -> None:
    with pytest.raises(Unsupported):
        load_documents(filename, _plain_zip())


@pytest.mark.parametrize(
    ("filename", "data", "member"),
    [
        ("bomb.pptx", _one_slide_deck(), "ppt/slides/slide1.xml"),
        ("bomb.xlsx", _tall_sheet(2), "xl/worksheets/sheet1.xml"),
    ],
)
def test_zip_bomb_is_refused_before_the_library_inflates_it(
    filename: str, data: bytes, member: str
) -> None:
    patched = bytearray(data)
    # Claim in the central directory that the member inflates past the limit.
    entry = patched.rindex(member.encode()) - 46
    assert patched[entry : entry + 4] == b"PK\x01\x02"
    patched[entry + 24 : entry + 28] = (MAX_EXPANDED_BYTES + 1).to_bytes(4, "little")
    with pytest.raises(TooLarge, match="expands to"):
        load_documents(filename, bytes(patched))


# ------------------------------------------------------------------- ingest and search


def test_search_hits_cite_the_slide_and_the_sheet(store_factory: StoreFactory) -> None:
    embedder = HashEmbedder(dimension=64)
    store: PGVectorStore = store_factory(dimension=embedder.dimension, embedder_name=embedder.name)
    indexer = Indexer(store, embedder, RetrievalSettings(chunk_size=300, chunk_overlap=0))
    paragraphs = [context for context, _ in korquad_paragraphs(6)]
    deck = _deck()
    for number, paragraph in enumerate(paragraphs[:3], start=1):
        slide = deck.slides.add_slide(deck.slide_layouts[TITLE_AND_CONTENT])
        slide.shapes.title.text = f"슬라이드 제목 {number}"
        slide.placeholders[1].text = paragraph
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for number, paragraph in enumerate(paragraphs[3:], start=1):
        sheet = workbook.create_sheet(f"시트 {number}")
        for sentence in paragraph.split(". "):
            sheet.append([number, sentence])

    for filename, data, pages, count_key in (
        ("발표.pptx", _saved(deck), paragraphs[:3], "slide_count"),
        ("통계.xlsx", _saved(workbook), paragraphs[3:], "sheet_count"),
    ):
        [result] = indexer.ingest_bytes(filename, data)
        assert result.outcome == "indexed"
        for number, page in enumerate(pages, start=1):
            sentence = " ".join(page.split(". ")[1].split())
            [hit, *_] = store.search_sparse(
                search_tokens(sentence), k=1, filters={"source": filename}
            )
            assert sentence in " ".join(hit.text.split())
            first, last = hit.metadata["page"], hit.metadata.get("page_end", hit.metadata["page"])
            assert first <= number <= last and hit.metadata[count_key] == 3
