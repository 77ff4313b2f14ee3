-- Removals that outlive the link (the Discord connector's security review): unlinking a Discord
-- account, an administrator removing the link, or deleting the user queues, in the same
-- transaction, a 'remove' row per mapped role carrying the Discord user id, which the worker
-- applies without the link (the link and the user may be gone by then). 'check' rows are the
-- rows of before: "check the user's role", decided from their groups when applied. `may_join`
-- says whether applying the check may add the user to the server with their guilds.join token
-- (only changes caused by a membership change may). `user_id` is set to NULL when the user is
-- deleted, so that their removals stay. One check row per (user, role), one removal row per
-- (Discord user, role).
--
-- SQLite cannot change a column's foreign key or nullability: the table is made again.
CREATE TABLE discord_role_changes_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    role_id BIGINT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_by TEXT,
    claimed_until TIMESTAMP,
    last_error TEXT,
    failed BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    action TEXT NOT NULL DEFAULT 'check' CHECK (action IN ('check', 'remove')),
    discord_user_id BIGINT,
    may_join BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO discord_role_changes_new (id, user_id, role_id, generation, attempts,
    next_attempt_at, claimed_by, claimed_until, last_error, failed, created_at)
SELECT id, user_id, role_id, generation, attempts, next_attempt_at, claimed_by, claimed_until,
    last_error, failed, created_at
FROM discord_role_changes;
DROP TABLE discord_role_changes;
ALTER TABLE discord_role_changes_new RENAME TO discord_role_changes;
CREATE INDEX discord_role_changes_due ON discord_role_changes (failed, next_attempt_at);
CREATE UNIQUE INDEX discord_role_changes_check ON discord_role_changes (user_id, role_id)
    WHERE action = 'check';
CREATE UNIQUE INDEX discord_role_changes_remove ON discord_role_changes (discord_user_id, role_id)
    WHERE action = 'remove';
