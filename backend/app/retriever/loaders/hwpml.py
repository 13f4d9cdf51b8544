"""HWPML (``.hwpml``, ``.hml``): a Hangul document saved as one XML file.

The root ``HWPML`` holds ``HEAD`` (the summary, with ``DOCSUMMARY/TITLE``, and the styles),
``BODY`` (sections of ``P`` paragraphs whose text is in ``CHAR`` elements; tables are
``TABLE/ROW/CELL/PARALIST``) and ``TAIL`` (embedded binary data, never read). Hangul declares
``&nbsp;`` in an internal DTD; the parser expands no entity, and the loader reads that one as a
space.
"""

from __future__ import annotations

from app.core.errors import Unsupported
from app.retriever.loaders.common import LoadedDocument, clean_text, reading, stem
from app.retriever.loaders.hwp import Markup, markup_paragraphs, parse_xml

HWPML_MARKUP = Markup(
    paragraph="P",
    text="CHAR",
    table="TABLE",
    row="ROW",
    cell="CELL",
    inline={"TAB": "\t", "LINEBREAK": "\n", "HYPEN": "-", "NBSPACE": " ", "FWSPACE": " "},
    # A section definition's parameter sets hold CHAR elements of settings.
    skipped=frozenset({"PARAMETERSET"}),
)


def load_hwpml(filename: str, data: bytes) -> list[LoadedDocument]:
    """An HWPML document: the text of every section, one paragraph per block; its title from
    ``DOCSUMMARY``, else the file name."""
    with reading(filename, "HWPML"):
        root = parse_xml(data)
        if root.tag != "HWPML":
            raise Unsupported(f"{filename} is XML but not an HWPML document.")
        title = " ".join(root.findtext("HEAD/DOCSUMMARY/TITLE", default="").split())
        paragraphs = [
            paragraph
            for body in root.iterfind("BODY")
            for paragraph in markup_paragraphs(body, HWPML_MARKUP)
        ]
    text = clean_text("\n\n".join(paragraphs))
    return [LoadedDocument(text, title or stem(filename), {})]
