"""Turn an uploaded file into text documents.

The file name's extension decides whether a file is taken (``is_supported``); its content
decides how it is read (``sniff``): a ``.hwpx`` that is HWP 5 is read as HWP 5, a ``.txt`` that
is a PDF as a PDF. A client's content type is never trusted. Unknown extensions, and content of
a format no loader reads, raise ``Unsupported``; empty files, files without text, protected and
damaged files raise ``InvalidInput``. A placeholder title gives way to the document's first
heading or its file name (``titles``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from app.core.errors import InvalidInput, Unsupported
from app.retriever.loaders import sniff
from app.retriever.loaders.common import LoadedDocument
from app.retriever.loaders.docx import load_docx
from app.retriever.loaders.html import load_html
from app.retriever.loaders.hwp import load_hwp, load_hwpx
from app.retriever.loaders.hwpml import load_hwpml
from app.retriever.loaders.images import load_image
from app.retriever.loaders.pdf import load_pdf
from app.retriever.loaders.pptx import load_pptx
from app.retriever.loaders.text import load_csv, load_jsonl, load_markdown, load_txt
from app.retriever.loaders.titles import with_title
from app.retriever.loaders.xlsx import load_xlsx

Loader = Callable[[str, bytes], list[LoadedDocument]]

LOADERS: dict[str, Loader] = {
    ".txt": load_txt,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".pdf": load_pdf,
    ".html": load_html,
    ".htm": load_html,
    ".docx": load_docx,
    ".pptx": load_pptx,
    ".xlsx": load_xlsx,
    ".hwpx": load_hwpx,
    ".hwp": load_hwp,
    ".hwpml": load_hwpml,
    ".hml": load_hwpml,
    ".jsonl": load_jsonl,
    ".csv": load_csv,
    ".png": load_image,
    ".jpg": load_image,
    ".jpeg": load_image,
}
SUPPORTED_EXTENSIONS = frozenset(LOADERS)

__all__ = ["SUPPORTED_EXTENSIONS", "LoadedDocument", "is_supported", "load_documents"]


def is_supported(filename: str) -> bool:
    """Whether the file name has an extension a loader reads."""
    return PurePath(filename).suffix.lower() in LOADERS


def load_documents(filename: str, data: bytes) -> list[LoadedDocument]:
    """The documents in one file (several for ``.jsonl`` and row-wise ``.csv``), each with text."""
    extension = PurePath(filename).suffix.lower()
    if extension not in LOADERS:
        raise Unsupported(
            f"{filename}: {extension or 'files without an extension'} cannot be indexed; "
            f"supported types are {_supported()}."
        )
    if not data.strip():
        raise InvalidInput(f"{filename} is empty.")
    loader = LOADERS[_content_format(filename, extension, data)]
    documents = [with_title(d, filename) for d in loader(filename, data) if d.text.strip()]
    if not documents:
        raise InvalidInput(f"{filename} contains no text to index.")
    return documents


def _content_format(filename: str, extension: str, data: bytes) -> str:
    """The ``LOADERS`` key of the format the content is in, whatever the name says."""
    found = sniff.detect(data, extension)
    if found in LOADERS:
        return found
    claimed = sniff.format_name(extension)
    if found is None:
        raise Unsupported(
            f"{filename} is not {claimed}: its content is binary data of no known format; "
            f"supported types are {_supported()}."
        )
    name = sniff.format_name(found)
    if found == sniff.ENCRYPTED_OFFICE:
        raise InvalidInput(
            f"{filename} is {name}; open it, remove the password and upload it again."
        )
    if found == sniff.PLAIN_TEXT:
        raise Unsupported(f"{filename} is {name}, not {claimed}; name it .txt to index it.")
    raise Unsupported(
        f"{filename} is {name}, not {claimed}, and cannot be indexed; "
        f"supported types are {_supported()}."
    )


def _supported() -> str:
    return ", ".join(sorted(LOADERS))
