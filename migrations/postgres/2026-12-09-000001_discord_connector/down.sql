DROP TABLE discord_connector_settings;
ALTER TABLE discord_accounts DROP COLUMN nick;
DROP TABLE discord_role_changes;
DROP TABLE discord_role_mappings;
DROP TABLE discord_roles;
