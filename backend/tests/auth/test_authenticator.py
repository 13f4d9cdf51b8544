"""The authenticator over a real key store: who a header makes a request, and for how long a
verified key is trusted (an injected clock, no waiting)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from app.auth.authenticator import LOCAL_USER, UNCHECKED, Authenticator
from app.auth.roles import Role
from app.auth.store import KeyStore
from app.core.config import AuthSettings
from app.core.errors import DatabaseUnavailable, InvalidInput, Unauthorized
from tests.conftest import StoreFactory


class Clock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def schema(store_factory: StoreFactory) -> str:
    """A fresh, migrated schema."""
    return store_factory().schema


@pytest.fixture
def keys(pg_url: str, schema: str) -> Iterator[KeyStore]:
    store = KeyStore(pg_url, schema)
    yield store
    store.close()


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_a_verified_key_is_trusted_for_cache_s_then_checked_again(keys: KeyStore) -> None:
    clock = Clock()
    authenticator = Authenticator(
        keys, AuthSettings(cache_s=30), bind_host="127.0.0.1", clock=clock
    )
    record, key = keys.create(Role.editor, name="ci", collections=["a", "b"])
    # Known without the database only once verified.
    assert authenticator.known_caller(_bearer(key)) is None
    caller = authenticator.caller(_bearer(key))
    assert (caller.id, caller.name, caller.role) == (record.id, "ci", Role.editor)
    assert caller.collections == frozenset({"a", "b"})

    assert keys.revoke(record.id)
    clock.now += 29
    assert authenticator.known_caller(_bearer(key)) == caller
    assert authenticator.caller(_bearer(key)) == caller
    assert authenticator.known_caller({"authorization": f"Basic {key}"}) is None
    assert authenticator.known_caller({}) is None
    clock.now += 2
    assert authenticator.known_caller(_bearer(key)) is None
    with pytest.raises(Unauthorized) as refused:
        authenticator.caller(_bearer(key))
    assert refused.value.code == "auth_invalid"


def test_the_first_key_turns_authentication_on_at_once_the_last_revoked_within_cache_s(
    keys: KeyStore,
) -> None:
    clock = Clock()
    authenticator = Authenticator(
        keys, AuthSettings(cache_s=10), bind_host="localhost", clock=clock
    )
    assert authenticator.caller({}) == LOCAL_USER
    record, _ = keys.create(Role.reader)
    with pytest.raises(Unauthorized) as refused:
        authenticator.caller({})
    assert refused.value.code == "auth_required"

    assert keys.revoke(record.id)
    with pytest.raises(Unauthorized):
        authenticator.caller({})
    clock.now += 11
    assert authenticator.caller({}) == LOCAL_USER


def test_off_loopback_every_request_needs_a_key_unless_auth_is_disabled(keys: KeyStore) -> None:
    exposed = Authenticator(keys, AuthSettings(cache_s=0), bind_host="0.0.0.0")
    with pytest.raises(Unauthorized):
        exposed.caller({})
    unchecked = Authenticator(keys, AuthSettings(disabled=True), bind_host="0.0.0.0")
    assert unchecked.caller({}) == UNCHECKED
    assert unchecked.known_caller({}) == UNCHECKED


def test_a_wrong_secret_for_a_real_id_is_refused(keys: KeyStore) -> None:
    authenticator = Authenticator(keys, AuthSettings(cache_s=30), bind_host="127.0.0.1")
    record, key = keys.create(Role.admin)
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthorized):
        authenticator.caller(_bearer(wrong))
    assert authenticator.caller(_bearer(key)).id == record.id


def test_the_store_keeps_only_a_hash_and_lists_revoked_keys(
    pg_url: str, schema: str, keys: KeyStore
) -> None:
    record, key = keys.create(Role.reader, name="부서 열람용")
    keys.revoke(record.id)
    listed = {r.id: r for r in keys.list()}
    assert listed[record.id].revoked_at is not None
    assert listed[record.id].name == "부서 열람용"
    assert keys.active(record.id) is None
    secret = key.split("_", 2)[2]
    query = sql.SQL("SELECT secret_hash FROM {} WHERE id = %s").format(
        sql.Identifier(schema, "api_keys")
    )
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute(query, (record.id,)).fetchone()
    assert stored is not None and secret not in stored[0] and stored[0].startswith("$argon2id$")


@pytest.mark.parametrize("collections", [[], [" "], ["a\x00b"]])
def test_bad_grants_are_refused(keys: KeyStore, collections: list[str]) -> None:
    with pytest.raises(InvalidInput):
        keys.create(Role.reader, collections=collections)


def _backends(pg_url: str) -> set[int]:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'rag-keys'"
        ).fetchall()
    return {int(pid) for (pid,) in rows}


def test_key_checks_keep_their_connection_and_survive_one_the_server_dropped(
    pg_url: str, keys: KeyStore
) -> None:
    assert not keys.any_active()
    kept = _backends(pg_url)
    assert len(kept) == 1
    record, _ = keys.create(Role.reader)
    assert keys.any_active()
    assert keys.active(record.id) is not None
    # The create ran on a short connection, closed since; the reads on the kept one.
    assert _backends(pg_url) == kept

    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (kept.pop(),))
    assert keys.any_active()
    assert len(_backends(pg_url)) == 1
    keys.close()
    assert _backends(pg_url) == set()


def test_while_the_database_is_down_the_last_answer_about_keys_stands() -> None:
    down = KeyStore("postgresql://nobody@127.0.0.1:1/none", "rag", connect_timeout_s=2)
    authenticator = Authenticator(down, AuthSettings(cache_s=0), bind_host="127.0.0.1")
    with pytest.raises(DatabaseUnavailable):
        authenticator.caller({})
    authenticator.fall_back_on(False)
    assert authenticator.caller({}) == LOCAL_USER
