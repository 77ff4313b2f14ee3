-- The Discord connector (issue 12; seed 003's django_discord_connector).
--
-- discord_roles: the guild's roles as the last "sync roles from Discord" read them
-- (GET /guilds/{guild}/roles), keyed by the role's snowflake. `unmappable` says why a role
-- cannot be mapped (managed by an integration, or at or above the bot's highest role), NULL
-- when it can. Replaced whole at every sync.
CREATE TABLE discord_roles (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    color BIGINT NOT NULL DEFAULT 0,
    position BIGINT NOT NULL DEFAULT 0,
    managed BOOLEAN NOT NULL DEFAULT FALSE,
    unmappable TEXT,
    synced_at TIMESTAMP NOT NULL
);

-- Which guild roles a local group gives its members (many roles per group, many groups per
-- role). A role is not a foreign key: a role deleted in Discord stays mapped until an admin
-- removes the mapping (its changes then fail with Discord's answer, shown in the console).
CREATE TABLE discord_role_mappings (
    group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (group_id, role_id)
);
CREATE INDEX discord_role_mappings_role ON discord_role_mappings (role_id);

-- Role changes waiting to be applied in Discord: "check user's mapped role", one row per
-- (user, role). Queued in the transaction of the membership change that calls for it; what to
-- do (add or remove) is decided when applied, from the user's groups then, so changes that
-- follow each other quickly end in the last state. A worker claims a due row with one
-- conditional UPDATE (claimed_until in the past or NULL) so that one node applies it;
-- `generation` grows with every re-queue, so a row re-queued while being applied is applied
-- again rather than deleted. `failed` rows (refused by Discord, or the user must sign in with
-- Discord again) wait for an admin or the next re-queue.
CREATE TABLE discord_role_changes (
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
CREATE INDEX discord_role_changes_due ON discord_role_changes (failed, next_attempt_at);

-- The member's nickname in the connector's guild, as sync_discord_users_accounts last read it
-- (NULL: none, or not read yet). Not written by sign-ins, which do not see it.
ALTER TABLE discord_accounts ADD COLUMN nick TEXT;

-- The connector's settings as saved in the console's Discord page (one row, id 1), over the
-- [discord] settings: the sign-in provider, the guild, the invite link, who wins, and the bot
-- token sealed with AES-256-GCM under a key derived from secrets.secret_key for this purpose
-- alone (NULL: the token of [discord] is used). Never shown again once saved. `updated_at`
-- tells every node to rebuild its client.
CREATE TABLE discord_connector_settings (
    id BIGINT PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL,
    guild_id BIGINT NOT NULL,
    invite_link TEXT,
    remote_priority BOOLEAN NOT NULL DEFAULT FALSE,
    bot_token_sealed TEXT,
    updated_at TIMESTAMP NOT NULL,
    updated_by TEXT
);
