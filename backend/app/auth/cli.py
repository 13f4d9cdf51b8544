"""``rag keys create|list|revoke``: API keys, straight in the database (a running server sees a
new or revoked key within ``AUTH_CACHE_S`` seconds)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from app.auth.roles import ROLE_NAMES, Role
from app.auth.store import KeyRecord, KeyStore

OpenKeys = Callable[[], AbstractContextManager[KeyStore]]


def register(commands: Any, open_keys: OpenKeys) -> None:
    """Add ``keys`` to the ``rag`` command; ``open_keys`` opens the store of the settings."""
    keys = commands.add_parser("keys", help="create, list or revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key and print it (shown only once)")
    create.add_argument("--role", choices=ROLE_NAMES, required=True)
    create.add_argument(
        "--collections",
        default=None,
        help="comma-separated collections the key may use (default: every collection)",
    )
    create.add_argument("--name", default=None, help="who or what the key is for")
    create.add_argument("--json", action="store_true", help='print {"id", "key", "role", ...}')
    create.set_defaults(func=lambda args: _create(args, open_keys))

    listing = actions.add_parser("list", help="every key, revoked ones included")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=lambda args: _list(args, open_keys))

    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(func=lambda args: _revoke(args, open_keys))


def _create(args: argparse.Namespace, open_keys: OpenKeys) -> int:
    collections = args.collections.split(",") if args.collections is not None else None
    with open_keys() as keys:
        record, key = keys.create(Role[args.role], name=args.name, collections=collections)
    grants = list(record.collections) if record.collections is not None else None
    if args.json:
        print(
            json.dumps(
                {"id": record.id, "key": key, "role": record.role.name, "collections": grants}
            )
        )
        return 0
    print(key)
    where = ", ".join(grants) if grants is not None else "every collection"
    print(
        f"created {record.role.name} key {record.id} ({record.name}) for {where}; it is shown "
        "only this once. Send it as `Authorization: Bearer <key>`.",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace, open_keys: OpenKeys) -> int:
    with open_keys() as keys:
        records = keys.list()
    if args.json:
        print(json.dumps([_as_json(r) for r in records], ensure_ascii=False, indent=2))
        return 0
    if not records:
        print("no keys (create one: rag keys create --role admin)")
    for r in records:
        state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
        where = ",".join(r.collections) if r.collections is not None else "*"
        print(
            f"{r.id}  {r.role.name:6} {state:22} {r.created_at:%Y-%m-%d %H:%M}  {where}  {r.name}"
        )
    return 0


def _revoke(args: argparse.Namespace, open_keys: OpenKeys) -> int:
    with open_keys() as keys:
        revoked = keys.revoke(args.key_id)
    if not revoked:
        print(f"error: no active key with id {args.key_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id}")
    return 0


def _as_json(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "role": record.role.name,
        "collections": list(record.collections) if record.collections is not None else None,
        "created_at": record.created_at.isoformat(),
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
    }
