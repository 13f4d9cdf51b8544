"""Text as the application keeps it: one normalisation for what is stored and what is searched."""

from app.text.normalize import (
    normalize_json,
    normalize_line,
    normalize_text,
    request_text_problem,
)

__all__ = ["normalize_json", "normalize_line", "normalize_text", "request_text_problem"]
