-- A job's interval as set at run time (the console's Discord page), over the one the node
-- registered from its configuration: NULL follows the configuration, 0 turns the job off (it
-- runs only when asked to, "Run now"), more is the interval in seconds. Every node's scheduler
-- reads it at its next pass.
ALTER TABLE jobs ADD COLUMN every_seconds BIGINT;

-- The nickname strategy of enforce_discord_nicknames as saved on the Discord page: NULL
-- follows discord.nickname_template, '' is none.
ALTER TABLE discord_connector_settings ADD COLUMN nickname_template TEXT;
