"""Excel workbooks (``.xlsx``): each sheet a page of ``cell | cell`` lines under the sheet's name.

Cells hold the values Excel last calculated (a formula's cached result, not the formula); a
workbook that was never opened in Excel has no such values, and its formula cells read as empty.
A workbook with more than ``MAX_CELLS`` cells is refused as ``TooLarge`` rather than indexed in
part: a search that silently misses the rest of a table is worse than a clear refusal.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime, time
from typing import TYPE_CHECKING

import openpyxl
from openpyxl.chartsheet import Chartsheet

from app.core.errors import TooLarge
from app.retriever.loaders.common import LoadedDocument, clean_text, reading, rebuilt_zip, stem
from app.retriever.loaders.pages import join_pages

if TYPE_CHECKING:
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

# Cells read per workbook, counting the empty cells before each row's last value and one step per
# row missing from the file: that is what reading costs, whatever the sheet's dimension claims.
MAX_CELLS = 1_000_000

_MAIN_PART = re.compile(r"xl/workbook\.xml")


def load_xlsx(filename: str, data: bytes) -> list[LoadedDocument]:
    """One document of all sheets in tab order; ``page_starts`` marks each sheet.

    A sheet's page is its name on the first line, then one line per row with its non-empty cells
    joined by `` | ``; a sheet without values (or a chart sheet) is an empty page.
    """
    # The library opens the whole zip; it gets one whose members were read within the limits.
    package = rebuilt_zip(filename, data, "Excel (.xlsx)", _MAIN_PART)
    with reading(filename, "an Excel workbook"):
        workbook = openpyxl.load_workbook(
            io.BytesIO(package), read_only=True, data_only=True, keep_links=False
        )
        try:
            budget = MAX_CELLS
            pages: list[str] = []
            for name in workbook.sheetnames:
                sheet = workbook[name]
                if isinstance(sheet, Chartsheet):
                    pages.append("")
                    continue
                lines, budget = _rows(sheet, budget)
                if budget < 0:
                    raise TooLarge(
                        f"{filename} has more than {MAX_CELLS:,} cells; split it into smaller "
                        "workbooks.",
                        code="file_too_large",
                    )
                heading = " ".join(name.split())
                pages.append(clean_text("\n".join([heading, *lines])) if lines else "")
            title = workbook.properties.title or ""
        finally:
            workbook.close()
    text, starts = join_pages(pages)
    return [
        LoadedDocument(
            text,
            " ".join(title.split()) or stem(filename),
            {"sheet_count": len(pages)},
            page_starts=starts,
        )
    ]


def _rows(sheet: ReadOnlyWorksheet, budget: int) -> tuple[list[str], int]:
    """The sheet's non-empty rows as ``cell | cell`` lines, and what is left of ``budget``;
    reading stops as soon as the budget is spent (then it is negative)."""
    # The declared dimension is only the file's claim (A1:XFD1048576 pads every row to 16,384
    # cells); without it each row is as wide as its own last cell.
    sheet.reset_dimensions()
    lines: list[str] = []
    for row in sheet.iter_rows(values_only=True):
        # A row missing from the file comes back empty and still costs a step.
        budget -= max(len(row), 1)
        if budget < 0:
            break
        cells = [text for text in map(_cell_text, row) if text]
        if cells:
            lines.append(" | ".join(cells))
    return lines, budget


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return " ".join(str(value).split())
