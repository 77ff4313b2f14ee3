ALTER TABLE tokens DROP COLUMN signing_kid;
DROP TABLE jobs;
