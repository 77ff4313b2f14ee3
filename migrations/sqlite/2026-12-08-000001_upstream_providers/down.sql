DROP TABLE upstream_providers;
