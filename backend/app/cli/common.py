"""What every ``rag`` command shares: the parts of the settings, the key store, JSON output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.core.config import get_settings


@contextmanager
def open_components() -> Iterator[Any]:
    """The parts the settings name, closed when the command ends."""
    from app.components import Components

    components = Components(get_settings())
    try:
        yield components
    finally:
        components.close()


@contextmanager
def open_key_store() -> Iterator[Any]:
    """The API keys of the store the settings name."""
    from app.auth.store import KeyStore

    with open_components() as components:
        settings = components.settings
        yield KeyStore(
            components.database_url,
            components.store.schema,
            connect_timeout_s=settings.database.connect_timeout_s,
        )


def print_json(data: Any) -> None:
    """``data`` as indented JSON, Korean left readable."""
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
