-- BM25 that reads only postings and statistics: each posting carries its chunk's collection and
-- token count (no join to chunks), and the collection statistics (chunks, tokens, document
-- frequencies) are kept by triggers as the postings and chunks change, not computed per query.

CREATE TABLE chunk_terms_0006 (
    term text NOT NULL,
    -- Copied from the chunk: a search scoped to a collection reads its postings alone.
    collection text NOT NULL,
    chunk_id bigint NOT NULL,
    tf integer NOT NULL CHECK (tf > 0),
    -- The chunk's number of search tokens, the document length of BM25.
    token_count integer NOT NULL CHECK (token_count >= tf)
);
INSERT INTO chunk_terms_0006 (term, collection, chunk_id, tf, token_count)
SELECT t.term, c.collection, t.chunk_id, t.tf, c.token_count
FROM chunk_terms t JOIN chunks c ON c.id = t.chunk_id;
DROP TABLE chunk_terms;
ALTER TABLE chunk_terms_0006 RENAME TO chunk_terms;
ALTER TABLE chunk_terms ADD CONSTRAINT chunk_terms_chunk_id_fkey
    FOREIGN KEY (chunk_id) REFERENCES chunks (id) ON DELETE CASCADE;
-- A term's postings, in one collection or in all, are one index-only range; a single posting
-- (the tf of a term in a given chunk) is one probe.
ALTER TABLE chunk_terms ADD PRIMARY KEY (term, collection, chunk_id) INCLUDE (tf, token_count);
CREATE INDEX chunk_terms_chunk ON chunk_terms (chunk_id);

-- Statistics are sums of signed rows, one per key and slot. A writing transaction adds to the
-- rows of a slot it holds alone (an advisory lock for the rest of the transaction), so writers
-- never wait on each other's statistics and a key keeps a few rows.
CREATE TABLE collection_stats (
    collection text NOT NULL,
    slot integer NOT NULL,
    chunks bigint NOT NULL,
    tokens bigint NOT NULL,
    PRIMARY KEY (collection, slot)
);

CREATE TABLE term_stats (
    term text NOT NULL,
    collection text NOT NULL,
    slot integer NOT NULL,
    -- Number of chunks of the collection that hold the term.
    df bigint NOT NULL,
    PRIMARY KEY (term, collection, slot)
) WITH (fillfactor = 80);

-- The slot this transaction writes statistics to: the first one it holds already or can take
-- now, so that a lone writer always uses slot 0 and a key has as many rows as there were ever
-- writers at once (at most 64).
CREATE FUNCTION stats_slot(store_schema text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    lock_space integer := hashtext('rag.stats_slot:' || store_schema);
BEGIN
    FOR slot IN 0 .. 63 LOOP
        IF pg_try_advisory_xact_lock(lock_space, slot) THEN
            RETURN slot;
        END IF;
    END LOOP;
    -- More writers at once than slots: wait for the holder of slot 0 to finish.
    PERFORM pg_advisory_xact_lock(lock_space, 0);
    RETURN 0;
END;
$$;

-- Statement-level triggers see every row a statement (COPY, a cascading delete) changed at once.
CREATE FUNCTION chunks_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    own integer;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM collection_stats;
        RETURN NULL;
    END IF;
    own := stats_slot(TG_TABLE_SCHEMA);
    IF TG_OP = 'INSERT' THEN
        INSERT INTO collection_stats AS s (collection, slot, chunks, tokens)
        SELECT collection, own, count(*), sum(token_count) FROM added GROUP BY collection
        ON CONFLICT (collection, slot) DO UPDATE
        SET chunks = s.chunks + EXCLUDED.chunks, tokens = s.tokens + EXCLUDED.tokens;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO collection_stats AS s (collection, slot, chunks, tokens)
        SELECT collection, own, -count(*), -sum(token_count) FROM removed
        GROUP BY collection
        ON CONFLICT (collection, slot) DO UPDATE
        SET chunks = s.chunks + EXCLUDED.chunks, tokens = s.tokens + EXCLUDED.tokens;
    ELSE
        INSERT INTO collection_stats AS s (collection, slot, chunks, tokens)
        SELECT collection, own, sum(n), sum(tokens)
        FROM (
            SELECT collection, 1 AS n, token_count AS tokens FROM added
            UNION ALL SELECT collection, -1, -token_count FROM removed
        ) AS rows
        GROUP BY collection
        HAVING sum(n) <> 0 OR sum(tokens) <> 0
        ON CONFLICT (collection, slot) DO UPDATE
        SET chunks = s.chunks + EXCLUDED.chunks, tokens = s.tokens + EXCLUDED.tokens;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION chunk_terms_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    own integer;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM term_stats;
        RETURN NULL;
    END IF;
    own := stats_slot(TG_TABLE_SCHEMA);
    IF TG_OP = 'INSERT' THEN
        INSERT INTO term_stats AS s (term, collection, slot, df)
        SELECT term, collection, own, count(*) FROM added GROUP BY term, collection
        ON CONFLICT (term, collection, slot) DO UPDATE SET df = s.df + EXCLUDED.df;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO term_stats AS s (term, collection, slot, df)
        SELECT term, collection, own, -count(*) FROM removed GROUP BY term, collection
        ON CONFLICT (term, collection, slot) DO UPDATE SET df = s.df + EXCLUDED.df;
    ELSE
        INSERT INTO term_stats AS s (term, collection, slot, df)
        SELECT term, collection, own, sum(d)
        FROM (
            SELECT term, collection, 1 AS d FROM added
            UNION ALL SELECT term, collection, -1 FROM removed
        ) AS rows
        GROUP BY term, collection
        HAVING sum(d) <> 0
        ON CONFLICT (term, collection, slot) DO UPDATE SET df = s.df + EXCLUDED.df;
    END IF;
    RETURN NULL;
END;
$$;

INSERT INTO collection_stats (collection, slot, chunks, tokens)
SELECT collection, 0, count(*), sum(token_count) FROM chunks GROUP BY collection;
INSERT INTO term_stats (term, collection, slot, df)
SELECT term, collection, 0, count(*) FROM chunk_terms GROUP BY term, collection;

CREATE TRIGGER chunks_counted_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION chunks_counted();
CREATE TRIGGER chunks_counted_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION chunks_counted();
CREATE TRIGGER chunks_counted_update AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION chunks_counted();
CREATE TRIGGER chunks_counted_truncate AFTER TRUNCATE ON chunks
    FOR EACH STATEMENT EXECUTE FUNCTION chunks_counted();

CREATE TRIGGER chunk_terms_counted_insert AFTER INSERT ON chunk_terms
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_counted();
CREATE TRIGGER chunk_terms_counted_delete AFTER DELETE ON chunk_terms
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_counted();
CREATE TRIGGER chunk_terms_counted_update AFTER UPDATE ON chunk_terms
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_counted();
CREATE TRIGGER chunk_terms_counted_truncate AFTER TRUNCATE ON chunk_terms
    FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_counted();
