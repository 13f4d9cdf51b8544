"""Who is asking: a key's role and the collections it may name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from app.core.errors import Forbidden, InvalidInput, NotFound


class Role(IntEnum):
    """Each role may do what the roles below it may do."""

    reader = 1
    """Search, chat, reviews and every read."""
    editor = 2
    """Also uploads, deletes and ingest jobs, in its collections."""
    admin = 3
    """Also keys, models, adapters and fine-tuning."""


ROLE_NAMES = tuple(role.name for role in Role)


@dataclass(frozen=True, slots=True)
class Caller:
    """The key behind a request (or the local user when no key is needed)."""

    id: str
    name: str
    role: Role
    collections: frozenset[str] | None
    """The only collections the key may name; None for every one."""

    @property
    def is_admin(self) -> bool:
        return self.role >= Role.admin

    def require(self, role: Role) -> None:
        """``Forbidden`` unless the caller's role is at least ``role``."""
        if self.role < role:
            raise Forbidden(
                f"This needs a key with the {role.name} role; this key's role is {self.role.name}.",
                code="forbidden_role",
                params={"role": role.name},
            )

    def may_use(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def require_collection(self, collection: str) -> None:
        """``Forbidden`` for a collection outside the key's grants; the message names no other."""
        if not self.may_use(collection):
            raise Forbidden("This key may not use that collection.", code="forbidden_collection")

    def scope(self, collection: str | None) -> str | None:
        """The collection a request that may name one works in: the named one (if granted), or
        for a key granted exactly one collection that one; None means every collection."""
        if collection is not None:
            self.require_collection(collection)
            return collection
        if self.collections is None:
            return None
        if len(self.collections) == 1:
            return next(iter(self.collections))
        raise InvalidInput(
            "This key is limited to some collections: name one of them.",
            code="collection_required",
        )

    def hide_unless_granted(self, collection: str, not_found: NotFound) -> None:
        """Raise ``not_found`` for a resource in an ungranted collection: a caller cannot tell
        it from one that does not exist."""
        if not self.may_use(collection):
            raise not_found
