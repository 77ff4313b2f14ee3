-- Scheduled maintenance and signing-key revocation.
--
-- jobs: one row per scheduled job (src/scheduler.rs). A node runs a job only after claiming its
-- slot with one conditional UPDATE (next_run_at <= now and no live lease), which succeeds for
-- exactly one node; it holds the lease (running_until, renewed while the job runs, owned by
-- lease_owner) until the run ends. failures counts consecutive failed runs (the retry backoff);
-- last_error is the latest failure's message, cleared by a successful run.
CREATE TABLE jobs (
    name TEXT PRIMARY KEY NOT NULL,
    next_run_at TIMESTAMP NOT NULL,
    running_until TIMESTAMP,
    lease_owner TEXT,
    last_started_at TIMESTAMP,
    last_finished_at TIMESTAMP,
    last_error TEXT,
    failures BIGINT NOT NULL DEFAULT 0
);

-- The kid of the key that signed a JWT access token (NULL for opaque tokens), so that revoking
-- a signing key (`latchkey keys revoke`) revokes the tokens it signed.
ALTER TABLE tokens ADD COLUMN signing_kid TEXT;
