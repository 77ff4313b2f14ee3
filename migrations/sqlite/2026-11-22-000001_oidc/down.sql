DROP TABLE signing_keys;
ALTER TABLE tokens DROP COLUMN amr;
ALTER TABLE tokens DROP COLUMN auth_time;
ALTER TABLE authorization_codes DROP COLUMN amr;
ALTER TABLE authorization_codes DROP COLUMN auth_time;
ALTER TABLE authorization_codes DROP COLUMN nonce;
ALTER TABLE clients DROP COLUMN always_issue_refresh_token;
ALTER TABLE clients DROP COLUMN access_token_format;
ALTER TABLE clients DROP COLUMN id_token_signed_response_alg;
