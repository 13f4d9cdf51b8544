-- LoRA adapters loaded while the server ran (POST /api/models/adapters): the server loads them
-- again at every start, so that they outlive a restart. DELETE /api/models/adapters/{{name}}
-- removes the row. Adapters named in REVIEW_ADAPTERS are not stored; the settings bring those.

CREATE TABLE served_adapters (
    name text PRIMARY KEY,
    -- The adapter's folder, as the server sees it.
    path text NOT NULL,
    -- The base model it was loaded on: a start with another review model skips it (and says so).
    base_model text NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
