-- Pages of the document list, newest first: read backwards along these, a page costs its own
-- rows whatever the total, and the cursor (created_at, id) starts where the last page ended.
CREATE INDEX documents_created ON documents (created_at, id);
CREATE INDEX documents_collection_created ON documents (collection, created_at, id);
