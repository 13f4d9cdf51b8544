"""What non-admin callers see of the server's own layout: no folders, no addresses."""

from __future__ import annotations

from pathlib import PurePath

from app.auth.roles import Caller


def is_location(text: str) -> bool:
    """Whether ``text`` is a folder or file path or a URL rather than a hub id (``org/name``)."""
    return "://" in text or text.startswith(("/", "~", ".", "\\")) or ":\\" in text


def model_name_for(caller: Caller, name: str | None) -> str | None:
    """A model name as ``caller`` may see it: ``local:/srv/models/midm`` → ``local:midm`` for
    everyone but admins."""
    if name is None or caller.is_admin:
        return name
    provider, colon, model = name.partition(":")
    if not colon:
        provider, model = "", name
    if not is_location(model):
        return name
    last = PurePath(model.rstrip("/\\")).name or "model"
    return f"{provider}:{last}" if colon else last


def path_for(caller: Caller, path: str) -> str:
    """A server-side path as ``caller`` may see it: the whole path for admins, else its name."""
    return path if caller.is_admin else PurePath(path).name
