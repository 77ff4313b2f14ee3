-- The upstream identity provider a browser session's login went through (issue 11): the
-- `[upstream.<id>]` id, NULL for a local login. Unlinking that provider ends these sessions.
ALTER TABLE user_sessions ADD COLUMN idp TEXT;
