-- Login limits (issue 9): a counter also remembers its last hit, so that a bucket past its
-- threshold can ask for a growing delay after the last failure instead of a hard lock.
ALTER TABLE rate_limits ADD COLUMN last_hit_at TIMESTAMP;
