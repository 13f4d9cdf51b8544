"""PowerPoint decks (``.pptx``): the text of every slide in order, each slide a page."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator

import pptx
from pptx.presentation import Presentation
from pptx.shapes.base import BaseShape
from pptx.shapes.group import GroupShape
from pptx.slide import Slide
from pptx.table import Table

from app.retriever.loaders.common import LoadedDocument, clean_text, reading, rebuilt_zip, stem
from app.retriever.loaders.pages import join_pages

_MAIN_PART = re.compile(r"ppt/presentation\.xml")


def load_pptx(filename: str, data: bytes) -> list[LoadedDocument]:
    """One document of all slides joined by blank lines; ``page_starts`` marks each slide.

    A slide reads as its shapes in the deck's reading order (text frames, tables as
    ``cell | cell`` lines, the shapes inside groups), then its speaker notes. The title is the
    first slide's title, else the deck's title property, else the file name.
    """
    # The library opens the whole zip; it gets one whose members were read within the limits.
    package = rebuilt_zip(filename, data, "PowerPoint (.pptx)", _MAIN_PART)
    with reading(filename, "a PowerPoint deck"):
        deck = pptx.Presentation(io.BytesIO(package))
        slides = [clean_text(_slide_text(slide)) for slide in deck.slides]
        title = _first_slide_title(deck) or deck.core_properties.title or ""
    text, starts = join_pages(slides)
    return [
        LoadedDocument(
            text,
            " ".join(title.split()) or stem(filename),
            {"slide_count": len(slides)},
            page_starts=starts,
        )
    ]


def _slide_text(slide: Slide) -> str:
    blocks = list(_shape_blocks(slide.shapes))
    if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame) is not None:
        blocks.append(_frame_text(notes.text))
    return "\n\n".join(block for block in blocks if block.strip())


def _shape_blocks(shapes: Iterable[BaseShape]) -> Iterator[str]:
    # The shape tree's order is the reading order PowerPoint gives screen readers. Groups nest
    # no deeper than the XML parser's depth limit (256), far below Python's recursion limit.
    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _shape_blocks(shape.shapes)
        elif shape.has_text_frame:
            yield _frame_text(shape.text_frame.text)
        elif shape.has_table:
            yield _table_text(shape.table)


def _frame_text(text: str) -> str:
    # python-pptx writes a line break inside a paragraph as a vertical tab.
    return text.replace("\v", "\n")


def _table_text(table: Table) -> str:
    lines = []
    for row in table.rows:
        # A cell covered by a merged cell repeats nothing of its own.
        cells = [" ".join(cell.text.split()) for cell in row.cells if not cell.is_spanned]
        cells = [c for c in cells if c]
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _first_slide_title(deck: Presentation) -> str:
    if not len(deck.slides):
        return ""
    title = deck.slides[0].shapes.title
    return title.text_frame.text if title is not None else ""
