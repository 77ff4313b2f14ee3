DROP TABLE user_sessions;
DROP TABLE one_time_codes;
ALTER TABLE users DROP COLUMN mfa_enabled;
