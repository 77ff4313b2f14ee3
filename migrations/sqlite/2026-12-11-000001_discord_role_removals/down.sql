CREATE TABLE discord_role_changes_old (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_by TEXT,
    claimed_until TIMESTAMP,
    last_error TEXT,
    failed BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (user_id, role_id)
);
INSERT INTO discord_role_changes_old (id, user_id, role_id, generation, attempts,
    next_attempt_at, claimed_by, claimed_until, last_error, failed, created_at)
SELECT id, user_id, role_id, generation, attempts, next_attempt_at, claimed_by, claimed_until,
    last_error, failed, created_at
FROM discord_role_changes
WHERE action = 'check' AND user_id IS NOT NULL;
DROP TABLE discord_role_changes;
ALTER TABLE discord_role_changes_old RENAME TO discord_role_changes;
CREATE INDEX discord_role_changes_due ON discord_role_changes (failed, next_attempt_at);
