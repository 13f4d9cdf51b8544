"""HTML pages: the readable text, without scripts, styles, navigation and other page furniture."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString

from app.retriever.loaders.common import LoadedDocument, clean_text, decode_text, reading, stem

_DROPPED = ("script", "style", "noscript", "template", "nav", "aside", "footer", "svg", "iframe")
# Elements that start a new paragraph, and those that only start a new line.
_PARAGRAPHS = (
    "p", "div", "section", "article", "main", "header", "blockquote", "pre", "table",
    "ul", "ol", "dl", "figure", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6",
)  # fmt: skip
_LINES = ("li", "dt", "dd", "caption")
_WHITESPACE = re.compile(r"\s+")


def load_html(filename: str, data: bytes) -> list[LoadedDocument]:
    """The page's visible text; the title is ``<title>``, else the first ``<h1>``, else the file name."""
    markup = decode_text(filename, data)
    with reading(filename, "HTML"):
        soup = BeautifulSoup(markup, "lxml")
        title = _title(soup) or stem(filename)
        for element in soup.find_all(["head", *_DROPPED]):
            element.decompose()
        text = _visible_text(soup)
    return [LoadedDocument(text, title, {})]


def _title(soup: BeautifulSoup) -> str:
    for name in ("title", "h1"):
        element = soup.find(name)
        if element is not None and element.get_text(strip=True):
            return " ".join(element.get_text(" ", strip=True).split())
    return ""


def _visible_text(soup: BeautifulSoup) -> str:
    # Line breaks in the markup are only spaces; the page's lines come from its elements.
    for string in soup.find_all(string=True):
        # Exactly NavigableString: comments, doctypes and CDATA are subclasses get_text() skips.
        if type(string) is NavigableString and string.find_parent("pre") is None:
            string.replace_with(NavigableString(_WHITESPACE.sub(" ", string)))
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for row in soup.find_all("tr"):
        cells = [
            " ".join(cell.get_text(" ", strip=True).split())
            for cell in row.find_all(["td", "th"], recursive=False)
        ]
        row.replace_with(" | ".join(c for c in cells if c) + "\n")
    for element in soup.find_all(_PARAGRAPHS):
        element.insert_before("\n\n")
        element.insert_after("\n\n")
    for element in soup.find_all(_LINES):
        element.insert_after("\n")
    lines = (line.strip() for line in soup.get_text().split("\n"))
    return clean_text("\n".join(lines))
