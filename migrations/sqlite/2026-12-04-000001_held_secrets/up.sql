-- A newly generated client secret, kept for its one view on the page the browser is redirected
-- to after registering an application or rotating its secret (post/redirect/get). The secret is
-- sealed with AES-256-GCM under a key derived from secrets.secret_key (src/secret.rs, Sealer);
-- ticket_hash is the SHA-256 of the random ticket kept in the browser's encrypted session.
-- A row is deleted when shown, when the client gets a newer secret, or (expired) at the next
-- insert.
CREATE TABLE held_secrets (
    ticket_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sealed TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX held_secrets_client ON held_secrets(client_id);
