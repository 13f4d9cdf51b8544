"""What a model adapter can do, declared with it, so that pipelines and routers ask instead of
testing provider names (``models/factory.py`` says it for each provider)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The abilities of one configured model."""

    writes_reviews: bool = False
    """It generates free text from the review prompt (the extractive answerer only quotes)."""
    names_adapters: bool = False
    """A request may name a LoRA adapter (loaded here, or served by name by an OpenAI-compatible
    server)."""
    loads_adapters: bool = False
    """Adapters load and unload while it serves."""
    loads_at_startup: bool = False
    """It is heavy to build: the server builds it before it starts answering, so that a bad
    setting stops start-up instead of failing the first request."""
