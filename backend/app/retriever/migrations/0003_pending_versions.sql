-- A version being indexed waits here ({{content_hash, source, title, size_bytes, metadata}}) while
-- the row's own columns keep describing the version whose chunks are stored, so that the
-- document and its chunks change together, in the transaction that swaps the chunks.
-- NULL when no version is pending (always for a document written whole by one transaction).
ALTER TABLE documents ADD COLUMN pending jsonb;
