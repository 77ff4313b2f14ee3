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

-- Accounts made by upstream sign-ins before this table existed: best effort from the audit log
-- (`user.created` with a `provider`), for those whose address is still verified and was the
-- only one they had (a password-less account made by a provider). Where the audit log was
-- pruned, such accounts count as verified by Latchkey, as before.
INSERT INTO upstream_email_vouches (user_id, provider_id, email, created_at)
SELECT u.id, MIN(CASE WHEN a.details LIKE '{%"provider"%}' THEN json_extract(a.details, '$.provider') END), u.email, u.date_joined
FROM users u
JOIN audit_events a ON a.user_id = u.id AND a.event = 'user.created'
WHERE u.email_verified AND u.password_hash IS NULL AND CASE WHEN a.details LIKE '{%"provider"%}' THEN json_extract(a.details, '$.provider') END IS NOT NULL
GROUP BY u.id, u.email, u.date_joined;
