ALTER TABLE tokens DROP COLUMN resources;
ALTER TABLE authorization_codes DROP COLUMN resources;
ALTER TABLE clients DROP COLUMN resource_uris;
