ALTER TABLE upstream_links DROP COLUMN picture;
