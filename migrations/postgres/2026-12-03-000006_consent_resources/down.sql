ALTER TABLE consents DROP COLUMN resources;
