-- Self-service accounts: the per-user login-code switch, emailed one-time codes, and browser
-- sessions recorded server-side (listed and ended from the account page, on every node).

ALTER TABLE users ADD COLUMN mfa_enabled BOOLEAN NOT NULL DEFAULT FALSE;

-- One-time codes sent by email. purpose: 'verify_email' or 'login'. Only the SHA-256 of the
-- code is kept (and of the challenge handle that ties a login code to the login attempt, the
-- API's mfa_token). A code dies when used, when expired, or after otp_max_attempts wrong guesses.
CREATE TABLE one_time_codes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    challenge_hash TEXT UNIQUE,
    client_id TEXT,
    scope TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    used_at TIMESTAMP
);
CREATE INDEX one_time_codes_user ON one_time_codes(user_id, purpose, created_at);

-- Browser sessions. id is the SHA-256 of the random handle kept in the (encrypted) cookie.
CREATE TABLE user_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    ip TEXT,
    user_agent TEXT NOT NULL DEFAULT '',
    amr TEXT NOT NULL DEFAULT 'pwd',
    ended_at TIMESTAMP
);
CREATE INDEX user_sessions_user ON user_sessions(user_id, created_at);
