"""PDF files: the text layer of every page, with where each page begins so chunks can cite it."""

from __future__ import annotations

import io

from pypdf import PasswordType, PdfReader

from app.core.errors import InvalidInput, Unsupported
from app.retriever.loaders.common import LoadedDocument, clean_text, reading, stem

# The header may follow a little junk (the PDF specification lets readers look in the first 1 KB).
_HEADER_WINDOW = 1024


def load_pdf(filename: str, data: bytes) -> list[LoadedDocument]:
    """One document of all pages joined by blank lines; ``page_starts`` marks each page."""
    if data.find(b"%PDF-", 0, _HEADER_WINDOW) < 0:
        raise Unsupported(f"{filename} is not a PDF file.")
    with reading(filename, "PDF"):
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise InvalidInput(f"{filename} is password-protected; remove the password first.")
        pages = [clean_text(page.extract_text()) for page in reader.pages]
        title = _title(reader)
    if not any(pages):
        raise InvalidInput(
            f"{filename} has no text layer (a scanned PDF?); run OCR on it first.",
        )
    parts: list[str] = []
    starts: list[int] = []
    offset = 0
    for text in pages:
        starts.append(offset)
        if text:
            parts.append(text)
            offset += len(text) + 2
    # A page without text begins where the next page's text does, so no offset maps to it.
    return [
        LoadedDocument(
            "\n\n".join(parts),
            title or stem(filename),
            {"page_count": len(pages)},
            page_starts=tuple(starts),
        )
    ]


def _title(reader: PdfReader) -> str:
    metadata = reader.metadata
    title = metadata.title if metadata is not None else None
    return " ".join(title.split()) if isinstance(title, str) else ""
