-- The upstream identity provider a login went through (issue 11): the `[upstream.<id>]` id, kept
-- with the authorization code and the tokens minted from it so that every ID token of the grant
-- (refreshes included) carries the `idp` claim. NULL: a local login (password, emailed code).
ALTER TABLE authorization_codes ADD COLUMN idp TEXT;
ALTER TABLE tokens ADD COLUMN idp TEXT;
