-- What each guild role allows (Discord's permission bits), as "sync roles from Discord" read it:
-- a role that gives Administrator, Manage Server, Manage Roles, Manage Channels, Ban Members,
-- Kick Members, Manage Webhooks or Moderate Members cannot be mapped (staff, who may add users to
-- groups, could otherwise hand out those powers in Discord), and the worker refuses to give a
-- mapped one. NULL: read before this column existed (sync roles again).
ALTER TABLE discord_roles ADD COLUMN permissions BIGINT;
