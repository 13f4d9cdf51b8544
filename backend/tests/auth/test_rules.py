"""Roles, grants, host names and what non-admins see: the rules on their own, no server."""

from __future__ import annotations

import pytest

from app.auth.browser import allowed_hosts, host_name
from app.auth.keys import new_key, parse_key
from app.auth.redact import model_name_for
from app.auth.roles import Caller, Role
from app.core.errors import Forbidden, InvalidInput, NotFound

ADMIN = Caller("a", "admin", Role.admin, None)
READER = Caller("r", "reader", Role.reader, None)
EDITOR_OF_A = Caller("e", "editor", Role.editor, frozenset({"a"}))
EDITOR_OF_AB = Caller("e2", "editor", Role.editor, frozenset({"a", "b"}))


def test_each_role_includes_the_ones_below() -> None:
    ADMIN.require(Role.editor)
    EDITOR_OF_A.require(Role.reader)
    with pytest.raises(Forbidden) as refused:
        READER.require(Role.editor)
    assert refused.value.code == "forbidden_role"


def test_a_scope_is_the_named_granted_collection_or_the_only_grant() -> None:
    assert READER.scope(None) is None
    assert READER.scope("x") == "x"
    assert EDITOR_OF_A.scope(None) == "a"
    assert EDITOR_OF_AB.scope("b") == "b"
    with pytest.raises(InvalidInput):
        EDITOR_OF_AB.scope(None)
    with pytest.raises(Forbidden) as refused:
        EDITOR_OF_A.scope("secret-team")
    assert "secret-team" not in refused.value.message


def test_an_ungranted_resource_looks_missing() -> None:
    missing = NotFound("No document with id 'd'.", code="document_not_found")
    EDITOR_OF_A.hide_unless_granted("a", missing)
    with pytest.raises(NotFound) as hidden:
        EDITOR_OF_A.hide_unless_granted("b", missing)
    assert hidden.value is missing


def test_keys_parse_back_and_nothing_else_does() -> None:
    key, text = new_key()
    assert parse_key(text) == key
    for bad in ("", "rag_", text + "x", text.replace("rag_", "gar_"), "rag_" + "0" * 200):
        assert parse_key(bad) is None


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8000", "localhost"),
        ("[::1]:8000", "::1"),
        ("RAG.Example", "rag.example"),
        ("::1", "::1"),
        ("", ""),
    ],
)
def test_host_names_lose_their_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_allowed_hosts_default_to_loopback_and_the_bound_host() -> None:
    assert allowed_hosts([], "0.0.0.0") == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts([], "10.0.0.5") == {"localhost", "127.0.0.1", "::1", "10.0.0.5"}
    assert allowed_hosts(["rag.example.com"], "0.0.0.0") == {"rag.example.com"}
    assert allowed_hosts(["*"], "0.0.0.0") is None


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("local:/srv/models/midm", "local:midm"),
        ("openai:gpt-4o-mini", "openai:gpt-4o-mini"),
        (
            "local:K-intelligence/Midm-2.0-Mini-Instruct",
            "local:K-intelligence/Midm-2.0-Mini-Instruct",
        ),
        ("sentence-transformers:./models/e5/", "sentence-transformers:e5"),
        ("/home/me/adapters/reviews", "reviews"),
    ],
)
def test_non_admins_see_no_folders(name: str, shown: str) -> None:
    assert model_name_for(READER, name) == shown
    assert model_name_for(ADMIN, name) == name
