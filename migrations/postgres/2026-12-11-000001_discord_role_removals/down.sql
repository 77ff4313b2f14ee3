DELETE FROM discord_role_changes WHERE action <> 'check' OR user_id IS NULL;
DROP INDEX discord_role_changes_remove;
DROP INDEX discord_role_changes_check;
ALTER TABLE discord_role_changes DROP COLUMN may_join;
ALTER TABLE discord_role_changes DROP COLUMN discord_user_id;
ALTER TABLE discord_role_changes DROP COLUMN action;
ALTER TABLE discord_role_changes ADD CONSTRAINT discord_role_changes_user_id_role_id_key
    UNIQUE (user_id, role_id);
ALTER TABLE discord_role_changes DROP CONSTRAINT discord_role_changes_user_id_fkey;
ALTER TABLE discord_role_changes ADD CONSTRAINT discord_role_changes_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE discord_role_changes ALTER COLUMN user_id SET NOT NULL;
