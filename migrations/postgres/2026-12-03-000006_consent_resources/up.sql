-- RFC 8707 resources with a remembered consent: the resources (APIs) the user has approved for
-- the client, space-separated, like every list column. A remembered consent covers a request
-- only when it names no resource the user has not approved (src/oauth/authorize.rs); consents
-- stored before this column existed cover no resource, so a request naming one asks again.
ALTER TABLE consents ADD COLUMN resources TEXT NOT NULL DEFAULT '';
