-- The picture of a linked upstream account (issue 11): OpenID Connect's `picture` claim, or the
-- Discord avatar's CDN URL; an https URL of at most 2000 bytes, shown on the linked-accounts
-- pages. NULL when the provider gave none.
ALTER TABLE upstream_links ADD COLUMN picture TEXT;
