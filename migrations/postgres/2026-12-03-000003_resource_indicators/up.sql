-- RFC 8707 resource indicators. Lists are space-separated TEXT, like every list column.
-- clients.resource_uris: the resources (APIs) a client serves as a resource server; it may
-- introspect access tokens whose audience names one of them.
ALTER TABLE clients ADD COLUMN resource_uris TEXT NOT NULL DEFAULT '';
-- The resources of the authorization request, kept with the code (the grant's resources).
ALTER TABLE authorization_codes ADD COLUMN resources TEXT NOT NULL DEFAULT '';
-- Access tokens: their audience (empty = oidc.access_token_audience); refresh tokens: the
-- grant's resources, which a refresh may narrow (RFC 8707 section 2.2).
ALTER TABLE tokens ADD COLUMN resources TEXT NOT NULL DEFAULT '';
