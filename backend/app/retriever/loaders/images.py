"""Images (.png, .jpg): the text they show, read by OCR (``ocr.py``)."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from app.core.errors import InvalidInput, TooLarge
from app.retriever.loaders import ocr
from app.retriever.loaders.common import LoadedDocument, clean_text, reading, stem

# The content decides, whatever the extension: the loaders' sniffing found the magic bytes of one
# of these, so an image Pillow cannot identify is a damaged one.
_FORMATS = ("PNG", "JPEG")
# About an 8000 x 6000 photo; Pillow itself warns of a decompression bomb from 89 million on.
MAX_IMAGE_PIXELS = 50_000_000


def load_image(filename: str, data: bytes) -> list[LoadedDocument]:
    """One document of the text recognised in the image."""
    with reading(filename, "image"):
        try:
            image = Image.open(io.BytesIO(data), formats=_FORMATS)
        # Where warnings are errors, Pillow's bomb warning is raised instead of returning.
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            image = None
        if image is None or image.width * image.height > MAX_IMAGE_PIXELS:
            raise TooLarge(
                f"{filename} has more than {MAX_IMAGE_PIXELS:,} pixels; that is the limit.",
                code="file_too_large",
            )
        recogniser = ocr.Recogniser(filename)
        if image.format == "JPEG":
            # Decode a large photo at a fraction of its size straight away.
            image.draft("L", _fitting(image.size))
        image = ImageOps.exif_transpose(image)
        image.load()
    text = clean_text(recogniser.text(image, "the image"))
    if not text:
        raise InvalidInput(f"{filename}: OCR found no text in the image.")
    return [LoadedDocument(text, stem(filename), {"ocr": True})]


def _fitting(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    factor = min(1.0, (ocr.MAX_PIXELS / max(width * height, 1)) ** 0.5)
    return max(1, int(width * factor)), max(1, int(height * factor))
