-- Who verified the address of an account made by an upstream sign-in (issue 11): an account
-- created because an upstream provider said it verified the address has a row here naming that
-- provider and the address. Linking by email (`link_by_email`) links a new upstream identity
-- only to an account whose current address Latchkey itself verified (a code or link it sent),
-- or that the same provider vouched for: otherwise whoever signs in first through a lax
-- provider claiming someone's address would receive that person's later sign-ins through
-- another provider (a pre-account-takeover). A row whose address is no longer the account's
-- (the address was changed and verified again by Latchkey) no longer counts.
CREATE TABLE upstream_email_vouches (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
