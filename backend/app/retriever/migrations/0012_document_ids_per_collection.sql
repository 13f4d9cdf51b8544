-- A document's id is unique within its collection, not across collections: the same id in two
-- collections is two documents. The key becomes (id, collection); chunks point at it with both
-- columns (they carry their collection already), so the write path's COPY rows stay as they were.
-- The id leads the key, so a lookup by id alone (that id in every collection) is one index range.

ALTER TABLE chunks DROP CONSTRAINT chunks_document_id_fkey;
ALTER TABLE chunks DROP CONSTRAINT chunks_document_id_ordinal_key;
ALTER TABLE documents DROP CONSTRAINT documents_pkey;
ALTER TABLE documents ADD PRIMARY KEY (id, collection);
ALTER TABLE chunks ADD CONSTRAINT chunks_document_id_collection_ordinal_key
    UNIQUE (document_id, collection, ordinal);
ALTER TABLE chunks ADD CONSTRAINT chunks_document_fkey FOREIGN KEY (document_id, collection)
    REFERENCES documents (id, collection) ON DELETE CASCADE;
