"""What a file is, judged by its content rather than its name.

Binary formats are known by their magic bytes and, for containers, by what they contain: an OLE
compound file is HWP 5 when its ``FileHeader`` carries the HWP signature (else Word, Excel or
PowerPoint 97-2003, or an encrypted Office package); a zip is HWPX, DOCX, PPTX, XLSX or
OpenDocument by its members or its ``mimetype``. Content without such a signature is text when
it decodes as text; then a text format's extension stands (``.txt``, ``.md``, ``.csv``, ...).
Under any other name, text is read only as what its start shows it to be: HWPML (root element
``HWPML``) or HTML. Other XML (``.xml``) and plain text (``PLAIN_TEXT``) have no loader there,
since nothing but the name tells what such a file was meant to be.

A format is named by the extension its loader is registered under (``.hwp``, ``.pdf``), so a
loader for a format the sniffer already knows (``.pptx``, ``.png``) takes part by its entry in
``LOADERS`` alone. Formats nothing reads have a name here too, for the refusal's message.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable

import olefile

from app.core.errors import InvalidInput, Unsupported
from app.retriever.loaders.common import decode_text
from app.retriever.loaders.hwp import HWP_SIGNATURE, OLE_MAGIC

ZIP_MAGIC = b"PK\x03\x04"
# An OLE package of an Office Open XML file encrypted with a password (MS-OFFCRYPTO).
ENCRYPTED_OFFICE = "encrypted-office"
# Text of no recognisable format, under a name that is not a text format's.
PLAIN_TEXT = "plain-text"

FORMAT_NAMES: dict[str, str] = {
    ".txt": "plain text",
    ".md": "Markdown text",
    ".markdown": "Markdown text",
    ".jsonl": "JSON Lines text",
    ".csv": "CSV text",
    ".html": "an HTML page",
    ".htm": "an HTML page",
    ".pdf": "a PDF document",
    ".hwp": "an HWP document",
    ".hwpx": "an HWPX document",
    ".hwpml": "an HWPML document",
    ".hml": "an HWPML document",
    ".docx": "a Word document (.docx)",
    ".pptx": "a PowerPoint presentation (.pptx)",
    ".xlsx": "an Excel workbook (.xlsx)",
    ".doc": "a Word 97-2003 document (.doc)",
    ".xls": "an Excel 97-2003 workbook (.xls)",
    ".ppt": "a PowerPoint 97-2003 presentation (.ppt)",
    ".odt": "an OpenDocument text (.odt)",
    ".ods": "an OpenDocument spreadsheet (.ods)",
    ".odp": "an OpenDocument presentation (.odp)",
    ".epub": "an EPUB book",
    ".xml": "an XML document",
    ".ole": "an OLE compound file of no known kind",
    ".zip": "a zip archive",
    ".gz": "a gzip archive",
    ".7z": "a 7-Zip archive",
    ".rar": "a RAR archive",
    ".png": "a PNG image",
    ".jpg": "a JPEG image",
    ".gif": "a GIF image",
    ".tif": "a TIFF image",
    ".webp": "a WebP image",
    ENCRYPTED_OFFICE: "a password-protected Office document",
    PLAIN_TEXT: "plain text",
}
# Formats whose loaders decode text themselves: their extension decides for text content.
TEXT_FORMATS = frozenset({".txt", ".md", ".markdown", ".jsonl", ".csv", ".html", ".htm"})
# The formats a container holds: a damaged or unrecognised container named as one of them goes
# to that format's loader, which says what is wrong with it.
_CONTAINS = {".ole": frozenset({".hwp"}), ".zip": frozenset({".hwpx", ".docx", ".pptx", ".xlsx"})}

_MAGIC = (
    (b"%PDF-", ".pdf"),
    (HWP_SIGNATURE, ".hwp"),  # HWP 3: its loader explains how to convert it
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"\x1f\x8b", ".gz"),
    (b"7z\xbc\xaf\x27\x1c", ".7z"),
    (b"Rar!\x1a\x07", ".rar"),
)
_OLE_STREAMS = (
    ("WordDocument", ".doc"),
    ("Workbook", ".xls"),
    ("Book", ".xls"),
    ("PowerPoint Document", ".ppt"),
    ("EncryptedPackage", ENCRYPTED_OFFICE),
)
_ZIP_MIMETYPES = {
    b"application/hwp+zip": ".hwpx",
    b"application/vnd.oasis.opendocument.text": ".odt",
    b"application/vnd.oasis.opendocument.spreadsheet": ".ods",
    b"application/vnd.oasis.opendocument.presentation": ".odp",
    b"application/epub+zip": ".epub",
}
_ZIP_MEMBERS = (
    (re.compile(r"Contents/section\d+\.xml"), ".hwpx"),
    (re.compile(r"word/document\.xml"), ".docx"),
    (re.compile(r"ppt/presentation\.xml"), ".pptx"),
    (re.compile(r"xl/workbook\.xml"), ".xlsx"),
)
# The start of an XML document before its root element: declaration, comments, doctype (whose
# internal subset, as Hangul writes it, declares entities in brackets).
_XML_PROLOG = r"(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*|<!DOCTYPE[^\[>]*(?:\[.*?\])?\s*>\s*)*"
_HWPML_ROOT = re.compile(_XML_PROLOG + r"<HWPML[\s>/]", re.DOTALL)
_HTML_START = re.compile(
    _XML_PROLOG + r"<(?:html|head|body|meta|title|h1|p|div|table)[\s>/]", re.DOTALL | re.IGNORECASE
)
_XML_START = re.compile(r"<\?xml\s")
_SNIFFED_CHARS = 4096


def format_name(found: str) -> str:
    """How a message names the format ``found``: an extension, ``ENCRYPTED_OFFICE`` or
    ``PLAIN_TEXT``."""
    return FORMAT_NAMES.get(found, f"a {found} file")


def detect(data: bytes, extension: str) -> str | None:
    """The format of ``data`` as the extension that names it; None for binary content of no
    known format. ``extension`` (the file name's, lower case) decides only for text content
    under a text format's extension, and for a damaged container that it names a format of."""
    found = _signature(data)
    if found is None:
        return extension if extension in TEXT_FORMATS else _text_format(data)
    if extension in _CONTAINS.get(found, ()):
        return extension
    return found


def _signature(data: bytes) -> str | None:
    for detector in _DETECTORS:
        if (found := detector(data)) is not None:
            return found
    return None


def _magic(data: bytes) -> str | None:
    for magic, found in _MAGIC:
        if data.startswith(magic):
            return found
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return ".webp"
    return None


def _ole(data: bytes) -> str | None:
    if not data.startswith(OLE_MAGIC):
        return None
    # olefile reads the header and directory only; the streams stay unread until opened.
    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            if ole.exists("FileHeader") and ole.openstream("FileHeader").read(
                len(HWP_SIGNATURE)
            ).startswith(HWP_SIGNATURE):
                return ".hwp"
            return next((found for name, found in _OLE_STREAMS if ole.exists(name)), ".ole")
    # A damaged compound file raises anything from OSError to struct.error.
    except Exception:
        return ".ole"


def _zip(data: bytes) -> str | None:
    if not data.startswith(ZIP_MAGIC):
        return None
    # The central directory alone names the members; nothing is inflated but a small mimetype.
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if "mimetype" in names and archive.getinfo("mimetype").file_size <= 128:
                mimetype = archive.read("mimetype").strip()
                if mimetype in _ZIP_MIMETYPES:
                    return _ZIP_MIMETYPES[mimetype]
    # A damaged archive raises anything from BadZipFile to zlib.error or RuntimeError.
    except Exception:
        return ".zip"
    for pattern, found in _ZIP_MEMBERS:
        if any(pattern.fullmatch(name) for name in names):
            return found
    return ".zip"


_DETECTORS: tuple[Callable[[bytes], str | None], ...] = (_magic, _ole, _zip)


def _text_format(data: bytes) -> str | None:
    """HWPML, HTML, XML or plain text, by how the text starts; None when ``data`` is not text."""
    try:
        text = decode_text("", data)
    except (InvalidInput, Unsupported):
        return None
    head = text[:_SNIFFED_CHARS].lstrip("\ufeff \t\r\n")
    if _HWPML_ROOT.match(head):
        return ".hwpml"
    if _HTML_START.match(head):
        return ".html"
    return ".xml" if _XML_START.match(head) else PLAIN_TEXT
