DROP TABLE audit_events;
DROP TABLE group_members;
DROP TABLE groups;
ALTER TABLE users DROP COLUMN sessions_valid_after;
