DROP TABLE upstream_links;
