ALTER TABLE user_sessions DROP COLUMN idp;
