ALTER TABLE discord_roles DROP COLUMN permissions;
