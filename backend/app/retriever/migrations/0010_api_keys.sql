-- API keys (`rag keys create`): a key is rag_<id>_<secret>; only an argon2 hash of the secret is
-- kept. A key with no collections may use every collection; revoking sets revoked_at and keeps
-- the row, so that `rag keys list` still shows who had access.

CREATE TABLE api_keys (
    id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('reader', 'editor', 'admin')),
    -- NULL: every collection; otherwise the only collections the key may name.
    collections text[],
    secret_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
