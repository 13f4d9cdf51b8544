"""HTML pages: the readable text, without scripts, styles, navigation and other page furniture.

The nesting depth is measured before the tree is built, by libxml2's HTML parser (the one that
builds bs4's tree here, so the depth is the tree's) with a target that only counts: a page
nested deeper than ``ReadLimits.max_html_depth`` is refused after a fraction of a second
instead of holding a core for hours.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString
from lxml import etree

from app.core.errors import TooLarge
from app.retriever.loaders.common import (
    LoadedDocument,
    clean_text,
    current_limits,
    decode_text,
    reading,
    stem,
)

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
        _check_depth(filename, markup)
        soup = BeautifulSoup(markup, "lxml")
        title = _title(soup) or stem(filename)
        for element in soup.find_all(["head", *_DROPPED]):
            element.decompose()
        text = _visible_text(soup)
    return [LoadedDocument(text, title, {})]


class _TooDeep(Exception):
    pass


class _DepthCounter:
    """A parser target that follows the nesting and stops the parse past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0

    def start(self, tag: str, attributes: object) -> None:
        self.depth += 1
        if self.depth > self.limit:
            raise _TooDeep

    def end(self, tag: str) -> None:
        self.depth -= 1

    def close(self) -> None:
        return None


def _check_depth(filename: str, markup: str) -> None:
    limit = current_limits().max_html_depth
    parser = etree.HTMLParser(target=_DepthCounter(limit), no_network=True)
    try:
        parser.feed(markup)
        parser.close()
    except _TooDeep:
        raise TooLarge(
            f"{filename} nests its HTML elements deeper than the limit of {limit:,} levels.",
            code="too_deep",
            params={"filename": filename, "limit": limit},
        ) from None
    # Markup too broken to count through is left to the parser that builds the tree.
    except etree.Error:
        return


def _title(soup: BeautifulSoup) -> str:
    for name in ("title", "h1"):
        element = soup.find(name)
        if element is not None and element.get_text(strip=True):
            return " ".join(element.get_text(" ", strip=True).split())
    return ""


def _visible_text(soup: BeautifulSoup) -> str:
    # Line breaks in the markup are only spaces; the page's lines come from its elements.
    # The strings inside <pre> are found once: asking each string for a <pre> above it walks
    # every ancestor of every string.
    preformatted = {id(s) for pre in soup.find_all("pre") for s in pre.find_all(string=True)}
    for string in soup.find_all(string=True):
        # Exactly NavigableString: comments, doctypes and CDATA are subclasses get_text() skips.
        if type(string) is NavigableString and id(string) not in preformatted:
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
