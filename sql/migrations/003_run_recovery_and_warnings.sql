-- 003: runs that died mid-way, and recordings labelled only in part.
--
-- A run records which process runs it (host, pid) and its last sign of life (heartbeat_at:
-- its start, every batch loaded). The next run marks a run still 'running' whose process
-- is gone (same host) or silent for too long (another host) 'abandoned', with when and by
-- which run, and removes the temporary files the dead process left (tmp_files_removed).

ALTER TABLE ingest_runs ADD COLUMN host VARCHAR;
ALTER TABLE ingest_runs ADD COLUMN pid INTEGER;
ALTER TABLE ingest_runs ADD COLUMN heartbeat_at TIMESTAMPTZ;
ALTER TABLE ingest_runs ADD COLUMN abandoned_at TIMESTAMPTZ;
ALTER TABLE ingest_runs ADD COLUMN abandoned_by VARCHAR;
ALTER TABLE ingest_runs ADD COLUMN tmp_files_removed INTEGER;

-- Inputs labelled with a caveat: a recording whose header promises more audio than the file
-- holds (a recorder that crashed) is labelled up to where it decodes; the row says how many
-- seconds were declared and found. Keyed like quarantine, so a re-run updates its row.
CREATE TABLE recording_warnings (
    warning_id      VARCHAR PRIMARY KEY,         -- sha256(kind:source:content_hash)[:32]
    kind            VARCHAR NOT NULL,            -- truncated, trailing_bytes
    source          VARCHAR NOT NULL,
    session_id      VARCHAR,
    content_hash    VARCHAR,
    declared_s      DOUBLE,
    found_s         DOUBLE,
    message         VARCHAR NOT NULL,
    run_id          VARCHAR,
    warned_at       TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
