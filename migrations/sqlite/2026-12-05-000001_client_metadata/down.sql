ALTER TABLE clients DROP COLUMN tos_uri;
ALTER TABLE clients DROP COLUMN policy_uri;
ALTER TABLE clients DROP COLUMN client_uri;
ALTER TABLE clients DROP COLUMN logo_uri;
