ALTER TABLE tokens DROP COLUMN idp;
ALTER TABLE authorization_codes DROP COLUMN idp;
