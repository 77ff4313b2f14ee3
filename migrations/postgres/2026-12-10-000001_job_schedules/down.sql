ALTER TABLE discord_connector_settings DROP COLUMN nickname_template;
ALTER TABLE jobs DROP COLUMN every_seconds;
