-- The Discord profile of a linked Discord account (issue 11; seed 000's DiscordUser): one row
-- per Discord user, keyed by the user's snowflake as a 64-bit integer, one-to-one with the
-- upstream link it came through (gone with the link, and so with the user). Refreshed at every
-- Discord sign-in, in the sign-in's transaction. `tag` is the name as Discord shows it (the
-- unique username, or `name#1234` where the discriminator is not "0"); `discriminator` and
-- `avatar` (the image hash, `a_…` when animated) give the avatar's CDN URL, computed when read.
-- When one Discord user is linked through two Discord providers, the row follows the link of
-- the latest sign-in.
CREATE TABLE discord_accounts (
    id BIGINT PRIMARY KEY NOT NULL,
    link_id TEXT NOT NULL UNIQUE REFERENCES upstream_links(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    discriminator TEXT NOT NULL DEFAULT '0',
    tag TEXT NOT NULL,
    global_name TEXT,
    avatar TEXT,
    public_flags BIGINT NOT NULL DEFAULT 0,
    flags BIGINT NOT NULL DEFAULT 0,
    locale TEXT,
    mfa_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    email TEXT,
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    last_login TIMESTAMP NOT NULL
);
