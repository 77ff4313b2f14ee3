-- The web console: groups (which upstream connectors map to roles, e.g. Discord guild roles,
-- through tables of their own that reference groups.id), the audit log, and a per-user cut-off
-- that ends every browser session started before it, on every node.

ALTER TABLE users ADD COLUMN sessions_valid_after TIMESTAMP;

CREATE TABLE groups (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- lower(name): group names are unique regardless of case.
    name_key TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    added_at TIMESTAMP NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);

-- Security events. No foreign keys: the record outlives the users and clients it names.
-- id is a UUID v7, so it sorts by time.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    event TEXT NOT NULL,
    actor_id TEXT,
    user_id TEXT,
    client_id TEXT,
    ip TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_time ON audit_events(occurred_at);
CREATE INDEX audit_events_event ON audit_events(event, occurred_at);
CREATE INDEX audit_events_user ON audit_events(user_id, occurred_at);
CREATE INDEX audit_events_actor ON audit_events(actor_id, occurred_at);
CREATE INDEX audit_events_client ON audit_events(client_id, occurred_at);
CREATE INDEX audit_events_ip ON audit_events(ip, occurred_at);
