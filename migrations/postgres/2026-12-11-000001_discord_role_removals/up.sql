-- Removals that outlive the link (the Discord connector's security review): unlinking a Discord
-- account, an administrator removing the link, or deleting the user queues, in the same
-- transaction, a 'remove' row per mapped role carrying the Discord user id, which the worker
-- applies without the link (the link and the user may be gone by then). 'check' rows are the
-- rows of before: "check the user's role", decided from their groups when applied. `may_join`
-- says whether applying the check may add the user to the server with their guilds.join token
-- (only changes caused by a membership change may). `user_id` is set to NULL when the user is
-- deleted, so that their removals stay. One check row per (user, role), one removal row per
-- (Discord user, role).
ALTER TABLE discord_role_changes ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE discord_role_changes DROP CONSTRAINT discord_role_changes_user_id_fkey;
ALTER TABLE discord_role_changes ADD CONSTRAINT discord_role_changes_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE discord_role_changes DROP CONSTRAINT discord_role_changes_user_id_role_id_key;
ALTER TABLE discord_role_changes ADD COLUMN action TEXT NOT NULL DEFAULT 'check'
    CHECK (action IN ('check', 'remove'));
ALTER TABLE discord_role_changes ADD COLUMN discord_user_id BIGINT;
ALTER TABLE discord_role_changes ADD COLUMN may_join BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX discord_role_changes_check ON discord_role_changes (user_id, role_id)
    WHERE action = 'check';
CREATE UNIQUE INDEX discord_role_changes_remove ON discord_role_changes (discord_user_id, role_id)
    WHERE action = 'remove';
