"""The web UI refuses before upload exactly the file types the server cannot read."""

from __future__ import annotations

import re
from pathlib import Path

from app.retriever.loaders import SUPPORTED_EXTENSIONS

UPLOAD_STATE = Path(__file__).resolve().parents[3] / "frontend" / "src" / "lib" / "uploadState.ts"


def test_the_web_ui_accepts_the_server_s_file_types() -> None:
    source = UPLOAD_STATE.read_text(encoding="utf-8")
    listing = re.search(r"SUPPORTED_EXTENSIONS = \[(.*?)\] as const", source, re.DOTALL)
    assert listing is not None, "SUPPORTED_EXTENSIONS not found in uploadState.ts"
    assert set(re.findall(r'"(\.[a-z0-9]+)"', listing.group(1))) == set(SUPPORTED_EXTENSIONS)
