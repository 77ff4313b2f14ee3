-- Upstream identity providers added in the admin console (issue 11; those of the configuration
-- file are not stored). `id` is the provider's id (URLs, the `idp` claim, `upstream_links`'
-- provider_id); `settings` is the provider's table as JSON in the shape of the configuration's
-- `[upstream.<id>]` (config::RawUpstream) without the client secret, so that one check
-- (config::upstream_settings) serves both; the client secret is sealed apart with AES-256-GCM
-- under a key derived from secrets.secret_key for this purpose (src/upstream/providers.rs),
-- the provider's id as associated data. Links are not tied to this table: deleting a provider
-- leaves its links, which work again if a provider with the same id and issuer comes back.
CREATE TABLE upstream_providers (
    id TEXT PRIMARY KEY NOT NULL,
    settings TEXT NOT NULL,
    client_secret_sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
