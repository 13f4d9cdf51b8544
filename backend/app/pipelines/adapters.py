"""The review model's LoRA adapters while the server runs: listed with how each was trained,
loaded and unloaded on request, and kept in the database so that they come back after a restart.

Adapters named in ``REVIEW_ADAPTERS`` come from the settings at every start; those loaded here
are stored (``AdapterRecords``) and loaded again by ``restore`` at start-up. A load that fails
changes nothing: neither the model nor the stored list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from app.core.errors import Conflict, InvalidInput, NotFound, RagError
from app.core.logger import get_logger
from app.models.adapter_files import RunRecord, read_run_record, same_model
from app.models.review_model import ReviewModel

log = get_logger(__name__)

Origin = Literal["settings", "api"]


class StoredAdapter(Protocol):
    """A stored adapter (``AdapterRecord``)."""

    name: str
    path: str
    base_model: str


class AdapterStore(Protocol):
    """Where adapters loaded at run time are kept (``AdapterRecords``)."""

    def stored(self) -> list[StoredAdapter]:
        """Every stored adapter, oldest first."""
        ...

    def save(self, name: str, path: str, base_model: str) -> None:
        """Store (or replace) one."""
        ...

    def delete(self, name: str) -> bool:
        """Forget one; whether it was stored."""
        ...


@dataclass(frozen=True, slots=True)
class ServedAdapter:
    """An adapter a review request may name."""

    name: str
    path: Path
    origin: Origin
    """``settings`` (REVIEW_ADAPTERS) or ``api`` (loaded at run time, stored in the database)."""
    run: RunRecord | None
    """How it was trained (``run.json`` and friends beside it); None when it has no record."""


class ServedAdapters:
    """Lists, loads, unloads and restores the review model's adapters. Every method blocks."""

    def __init__(self, reviews: ReviewModel, store: AdapterStore) -> None:
        self._reviews = reviews
        self._store = store

    def loaded(self) -> list[ServedAdapter]:
        """The adapters loaded now, in the order they were loaded, with their run records."""
        return [self._describe(name, path) for name, path in self._reviews.adapters().items()]

    def load(self, name: str, path: Path) -> ServedAdapter:
        """Load the adapter in folder ``path`` (absolute, on this server) as ``name``, and store it."""
        if not path.is_absolute():
            raise InvalidInput(
                f"The adapter folder must be an absolute path on the server, got {str(path)!r}.",
                code="invalid_adapter",
                params={"name": name, "path": str(path)},
            )
        self._reviews.load_adapter(name, path)
        try:
            self._store.save(name, str(path), self._reviews.base_model or "")
        except BaseException:
            # Not stored, so not loaded either: it would vanish at the next restart.
            self._reviews.unload_adapter(name)
            raise
        return self._describe(name, path)

    def unload(self, name: str) -> None:
        """Forget adapter ``name`` and unload it once the requests using it have finished."""
        if name in self._reviews.configured:
            raise Conflict(
                f"The adapter {name!r} comes from REVIEW_ADAPTERS and is loaded at every start; "
                "remove it there (and restart) instead.",
                code="adapter_from_settings",
                params={"name": name},
            )
        self._reviews.adapter_host()
        forgotten = self._store.delete(name)
        if name in self._reviews.adapters():
            self._reviews.unload_adapter(name)
        elif not forgotten:
            raise NotFound(
                f"No adapter named {name!r} is loaded.",
                code="adapter_not_found",
                params={"name": name},
            )

    def restore(self) -> list[str]:
        """Load the adapters stored by earlier runs; one that cannot be loaded now is logged and
        skipped (it stays stored), so that the server starts anyway. Returns the names loaded."""
        base = self._reviews.base_model
        if base is None:
            return []
        loaded = []
        for record in self._store.stored():
            if record.name in self._reviews.adapters():
                log.warning(
                    "stored adapter %s not loaded: REVIEW_ADAPTERS names one of that name",
                    record.name,
                )
                continue
            if not same_model(record.base_model, base):
                log.warning(
                    "stored adapter %s not loaded: it was loaded on %s, the review model is %s "
                    "(DELETE /api/models/adapters/%s forgets it)",
                    record.name,
                    record.base_model,
                    base,
                    record.name,
                )
                continue
            try:
                self._reviews.load_adapter(record.name, Path(record.path))
            except RagError as exc:
                log.warning("stored adapter %s not loaded: %s", record.name, exc.message)
                continue
            loaded.append(record.name)
        if loaded:
            log.info("adapters loaded again: %s", ", ".join(loaded))
        return loaded

    def _describe(self, name: str, path: Path) -> ServedAdapter:
        origin: Origin = "settings" if name in self._reviews.configured else "api"
        return ServedAdapter(name, path, origin, read_run_record(path))
