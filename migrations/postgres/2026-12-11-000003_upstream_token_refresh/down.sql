ALTER TABLE upstream_links DROP COLUMN tokens_refreshing_until;
