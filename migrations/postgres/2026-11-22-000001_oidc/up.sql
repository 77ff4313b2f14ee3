-- OpenID Connect: per-client signing and token choices, the authentication context that ID
-- tokens carry (nonce, auth_time, amr), and the signing keys shared by every node.

ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT 'RS256';
ALTER TABLE clients ADD COLUMN access_token_format TEXT NOT NULL DEFAULT 'opaque';
ALTER TABLE clients ADD COLUMN always_issue_refresh_token BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE authorization_codes ADD COLUMN nonce TEXT;
ALTER TABLE authorization_codes ADD COLUMN auth_time TIMESTAMP;
ALTER TABLE authorization_codes ADD COLUMN amr TEXT;

ALTER TABLE tokens ADD COLUMN auth_time TIMESTAMP;
ALTER TABLE tokens ADD COLUMN amr TEXT;

-- private_key: AES-256-GCM over the PKCS#8 DER, base64url(nonce || ciphertext), with the kid
-- as associated data; the key comes from secrets.secret_key through HKDF-SHA256.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    activates_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP,
    expires_at TIMESTAMP
);
CREATE INDEX signing_keys_alg ON signing_keys(alg);
