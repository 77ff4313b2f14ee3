-- The `state` values of upstream sign-ins that reached their callback (issue 11), as SHA-256 hex:
-- a state is accepted once, on every node, even when the browser's cookie holding the pending
-- sign-in is replayed (RFC 6749 §10.12; RFC 9700 §4.7). A row is needed only while such a
-- cookie could still be accepted, so it expires with the sign-in (10 minutes after it began) and
-- the cleanup job deletes it then.
CREATE TABLE upstream_used_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
