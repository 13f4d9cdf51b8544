"""Titles that name their document.

Office programs fill the title property with whatever was there: a template's ``제목`` or
``Title``, ``1111``, ``3``, ``본문내용본문내용``. Such a placeholder gives way to the document's
first heading or short first line, else to the file name.
"""

from __future__ import annotations

import dataclasses
import re

from app.retriever.loaders.common import LoadedDocument, stem

# Longest first line that still reads as a heading rather than a paragraph.
MAX_HEADING_CHARS = 60
# Lines looked at for a heading: page numbers, placeholders and table rows are passed over.
_HEADING_LINES = 10
# Template words, compared without case, spaces or punctuation; a number may follow.
_PLACEHOLDER_WORDS = re.compile(
    r"(?:제목|제목없음|무제|문서|새문서|빈문서|본문|본문내용|내용|한글|한글문서|제목을입력하세요"
    r"|제목을입력하십시오|title|untitled|notitle|document|doc|noname|none|null|hwp|hwpx"
    r"|프레젠테이션|powerpoint프레젠테이션|presentation|powerpointpresentation|slide|슬라이드"
    r"|sheet|시트)\d*"
)
_NOT_WORD = re.compile(r"[\W_]+")
_REPEATED = re.compile(r"(.+?)\1+")
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+(.*?)(?:\s+#+)?$")


def is_placeholder(title: str) -> bool:
    """Whether ``title`` names nothing: empty, no letters, a template word, or one word repeated."""
    if not any(character.isalpha() for character in title):
        return True
    key = _NOT_WORD.sub("", title.casefold())
    return bool(_PLACEHOLDER_WORDS.fullmatch(key) or _REPEATED.fullmatch(key))


def first_heading(text: str) -> str:
    """The document's first short line that is not a placeholder, as a heading; "" when the text
    opens with a paragraph instead."""
    lines = (line.strip() for line in text.split("\n"))
    for number, line in enumerate(line for line in lines if line):
        if number == _HEADING_LINES:
            break
        # Tables are flattened to "cell | cell" rows: a row is not a heading.
        if " | " in line:
            continue
        heading = " ".join(_MARKDOWN_HEADING.sub(r"\1", line).split())
        if is_placeholder(heading):
            continue
        return heading if len(heading) <= MAX_HEADING_CHARS else ""
    return ""


def with_title(document: LoadedDocument, filename: str) -> LoadedDocument:
    """``document`` with its title, or in place of a placeholder its first heading, else the
    file name."""
    if not is_placeholder(document.title):
        return document
    title = first_heading(document.text) or stem(filename)
    return dataclasses.replace(document, title=title)
