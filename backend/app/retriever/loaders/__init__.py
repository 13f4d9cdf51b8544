"""Turn an uploaded file into text documents.

The file type comes from the file name's extension and is then checked against the content
(magic bytes, archive members, text decoding); a client's content type is never trusted.
Unknown extensions and content that is not what its extension says raise ``Unsupported``;
empty files, files without text and damaged files raise ``InvalidInput``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from app.core.errors import InvalidInput, Unsupported
from app.retriever.loaders.common import LoadedDocument
from app.retriever.loaders.docx import load_docx
from app.retriever.loaders.html import load_html
from app.retriever.loaders.hwp import load_hwp, load_hwpx
from app.retriever.loaders.pdf import load_pdf
from app.retriever.loaders.text import load_csv, load_jsonl, load_markdown, load_txt

Loader = Callable[[str, bytes], list[LoadedDocument]]

LOADERS: dict[str, Loader] = {
    ".txt": load_txt,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".pdf": load_pdf,
    ".html": load_html,
    ".htm": load_html,
    ".docx": load_docx,
    ".hwpx": load_hwpx,
    ".hwp": load_hwp,
    ".jsonl": load_jsonl,
    ".csv": load_csv,
}
SUPPORTED_EXTENSIONS = frozenset(LOADERS)

__all__ = ["SUPPORTED_EXTENSIONS", "LoadedDocument", "is_supported", "load_documents"]


def is_supported(filename: str) -> bool:
    """Whether the file name has an extension a loader reads."""
    return PurePath(filename).suffix.lower() in LOADERS


def load_documents(filename: str, data: bytes) -> list[LoadedDocument]:
    """The documents in one file (several for ``.jsonl`` and row-wise ``.csv``), each with text."""
    extension = PurePath(filename).suffix.lower()
    loader = LOADERS.get(extension)
    if loader is None:
        supported = ", ".join(sorted(LOADERS))
        raise Unsupported(
            f"{filename}: {extension or 'files without an extension'} cannot be indexed; "
            f"supported types are {supported}."
        )
    if not data.strip():
        raise InvalidInput(f"{filename} is empty.")
    documents = [d for d in loader(filename, data) if d.text.strip()]
    if not documents:
        raise InvalidInput(f"{filename} contains no text to index.")
    return documents
