-- A user's linked account at an upstream identity provider (issue 11): keyed by the provider's
-- id (the `[upstream.<id>]` table) and the provider's subject for the user (OIDC `sub`, the
-- Discord user's snowflake), never by email; `issuer` is the issuer the subject belongs to
-- (OIDC `sub` is unique only within one issuer: a provider whose issuer is changed in the
-- configuration matches none of its old links). One link per provider per user. Upstream access
-- and refresh tokens, kept only when a later call needs them (Discord's guilds.join for the
-- connector), are sealed with AES-256-GCM under a key derived from secrets.secret_key
-- (src/secret.rs, Sealer), with the link's id as associated data.
CREATE TABLE upstream_links (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    username TEXT NOT NULL DEFAULT '',
    display_name TEXT NOT NULL DEFAULT '',
    email TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    access_token_sealed TEXT,
    refresh_token_sealed TEXT,
    token_expires_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP,
    UNIQUE (provider_id, subject),
    UNIQUE (user_id, provider_id)
);
