"""Text from pixels: Tesseract OCR of scanned PDF pages and of images, where it is installed.

OCR is optional. Tesseract is a program, not a Python package: Debian's ``tesseract-ocr`` and
its Korean data ``tesseract-ocr-kor``. Without them a file that holds only pixels is refused
with a message that says how to enable it.

The program runs as a child process, fed the image on standard input, so each call can be
killed at its deadline. Every file is bounded: images are scaled down to ``MAX_PIXELS`` before
recognition, and the recognition of one file's images together ends after ``TIME_LIMIT_S``.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import time

from PIL import Image

from app.core.errors import InvalidInput, TooLarge

LANGUAGES = ("kor", "eng")
# Tesseract reads text best at about 300 dpi; scanned pages are rendered so.
RENDER_DPI = 300
# About an A4 page at 350 dpi: larger images are scaled down, bounding memory and time per page.
MAX_PIXELS = 12_000_000
TIME_LIMIT_S = 300.0
# Page segmentation "single column of text": the automatic mode (3) drops whole Hangul lines of
# clean scans, mode 4 keeps them and still finds the lines and blocks of a page.
_PAGE_SEGMENTATION = "4"
_LIST_TIMEOUT_S = 10.0
_HOW_TO_ENABLE = (
    "install Tesseract with its Korean data (Debian/Ubuntu: "
    "apt-get install tesseract-ocr tesseract-ocr-kor) to have it recognised"
)


def unavailable_reason() -> str | None:
    """Why OCR cannot run here, or ``None`` when Tesseract and its Korean and English data are installed."""
    binary = shutil.which("tesseract")
    if binary is None:
        return "Tesseract OCR is not installed"
    try:
        listing = subprocess.run(
            [binary, "--list-langs"], capture_output=True, timeout=_LIST_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Tesseract OCR does not run ({type(exc).__name__})"
    # The first line names the data folder; each further line is one installed language.
    lines = listing.stdout.decode("utf-8", "replace").splitlines()[1:]
    installed = {line.strip() for line in lines}
    missing = [language for language in LANGUAGES if language not in installed]
    if listing.returncode != 0 or missing:
        return f"Tesseract OCR lacks its {'+'.join(missing or LANGUAGES)} language data"
    return None


class Recogniser:
    """Recognises the images of one file, all within the file's time limit."""

    def __init__(self, filename: str) -> None:
        """Raises ``InvalidInput`` (code ``ocr_unavailable``) when OCR is not installed."""
        reason = unavailable_reason()
        if reason is not None:
            raise InvalidInput(
                f"{filename} holds its text as images only, and {reason}: {_HOW_TO_ENABLE}.",
                code="ocr_unavailable",
                params={"filename": filename},
            )
        self._filename = filename
        self._binary = shutil.which("tesseract") or "tesseract"
        self._deadline = time.monotonic() + TIME_LIMIT_S

    def text(self, image: Image.Image, where: str, *, dpi: int | None = None) -> str:
        """The text Tesseract reads in ``image`` (``where``: "page 3", for messages)."""
        image = image.convert("L")
        pixels = image.width * image.height
        if pixels > MAX_PIXELS:
            factor = math.sqrt(MAX_PIXELS / pixels)
            size = (max(1, int(image.width * factor)), max(1, int(image.height * factor)))
            image = image.resize(size, Image.Resampling.LANCZOS)
            dpi = round(dpi * factor) if dpi else None
        encoded = io.BytesIO()
        # Uncompressed grey (PGM): nothing to compress only for Tesseract to decompress again.
        image.save(encoded, format="PPM")
        command = [self._binary, "stdin", "stdout", "-l", "+".join(LANGUAGES)]
        command += ["--psm", _PAGE_SEGMENTATION]
        if dpi:
            command += ["--dpi", str(dpi)]
        remaining = self._deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise subprocess.TimeoutExpired(command, TIME_LIMIT_S)
            result = subprocess.run(
                command, input=encoded.getvalue(), capture_output=True, timeout=remaining
            )
        except OSError as exc:
            raise InvalidInput(f"OCR of {where} of {self._filename} failed: {exc}") from None
        except subprocess.TimeoutExpired:
            raise TooLarge(
                f"OCR of {self._filename} did not finish within {TIME_LIMIT_S:.0f} s "
                f"(stopped at {where}); split the file into smaller ones.",
                code="ocr_timeout",
                params={"filename": self._filename, "limit_s": TIME_LIMIT_S},
            ) from None
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise InvalidInput(
                f"OCR of {where} of {self._filename} failed: "
                f"{detail[-1] if detail else f'exit status {result.returncode}'}",
            )
        return result.stdout.decode("utf-8", "replace")
