-- A document is written as 'indexing' and ends 'ready' or 'failed'; 'pending' was allowed by the
-- first version but never written, so the check stops admitting it.
ALTER TABLE documents DROP CONSTRAINT documents_status_check;
ALTER TABLE documents ADD CONSTRAINT documents_status_check
    CHECK (status IN ('indexing', 'ready', 'failed'));
