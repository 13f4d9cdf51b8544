"""What every settings group shares: where its values come from, and which keys count as unset."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

_PLACEHOLDER_KEYS = {"", "changeme", "your-key-here", "sk-...", "sk-xxx", "xxx"}


def settings_config(prefix: str) -> SettingsConfigDict:
    """The configuration of a group whose variables start with ``prefix``."""
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # `DATABASE_URL=` copied from .env.example means "not set", not "the empty URL".
        env_ignore_empty=True,
        # Code and tests may use field names (data_dir=...) where the environment uses aliases.
        populate_by_name=True,
    )


def is_placeholder(key: SecretStr) -> bool:
    """Whether ``key`` is empty or an example value copied from the docs."""
    return key.get_secret_value().strip().lower() in _PLACEHOLDER_KEYS
