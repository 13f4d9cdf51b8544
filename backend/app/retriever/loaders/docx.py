"""Word documents (``.docx``): paragraphs and tables in reading order."""

from __future__ import annotations

import io
import re

import docx
from docx.document import Document
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from app.retriever.loaders.common import LoadedDocument, clean_text, reading, rebuilt_zip, stem

_MAIN_PART = re.compile(r"word/document\.xml")
_TITLE_STYLES = ("Title", "Heading")


def load_docx(filename: str, data: bytes) -> list[LoadedDocument]:
    """Paragraphs separated by blank lines, table rows as ``cell | cell`` lines."""
    # The library opens the whole zip; it gets one whose members were read within the limits.
    package = rebuilt_zip(filename, data, "Word (.docx)", _MAIN_PART)
    with reading(filename, "a Word document"):
        document = docx.Document(io.BytesIO(package))
        blocks = _blocks(document)
        title = document.core_properties.title or _first_heading(document)
    text = clean_text("\n\n".join(blocks))
    return [LoadedDocument(text, " ".join(title.split()) or stem(filename), {})]


def _blocks(container: Document | _Cell) -> list[str]:
    blocks: list[str] = []
    for item in container.iter_inner_content():
        if isinstance(item, Paragraph):
            if item.text.strip():
                blocks.append(item.text)
        else:
            blocks.append(_table_text(item))
    return [b for b in blocks if b]


def _table_text(table: Table) -> str:
    lines = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # A merged cell comes back once per grid column it spans, as the same object.
            if cell is not previous:
                cells.append(" ".join(" / ".join(_blocks(cell)).split()))
            previous = cell
        cells = [c for c in cells if c]
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _first_heading(document: Document) -> str:
    for paragraph in document.paragraphs:
        style = paragraph.style.name if paragraph.style is not None else ""
        if style.startswith(_TITLE_STYLES) and paragraph.text.strip():
            return paragraph.text
    return ""
