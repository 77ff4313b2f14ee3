DROP TABLE upstream_used_states;
