-- Hearth 0008, run as hearth_owner before the functions are (re)loaded: what limits an anonymous caller.
-- The settings of the limits, the creator of a session (max_open_sessions_per_identity), the identities
-- created per client key (identity_rate_limit). create_session gains p_created_by: a new signature, so the
-- old one is dropped (register_display and create_match, its callers, are reloaded with it).
INSERT INTO hearth_data.settings (key, value, value_type, description) VALUES
    ('identity_rate_limit',   '30',         'integer',  'identities one client address may create per minute'),
    ('max_open_sessions_per_identity', '20', 'integer', 'open rooms one identity created plus displays it registered'),
    ('max_sockets_per_identity', '10',      'integer',  'websockets one identity may hold at once on one instance');

ALTER TABLE hearth_data.sessions ADD COLUMN created_by uuid;
CREATE INDEX sessions_open_created_by_idx
    ON hearth_data.sessions (created_by) WHERE created_by IS NOT NULL AND status IN ('waiting', 'active');

CREATE TABLE hearth_data.identity_creations (
    client_key text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX identity_creations_key_idx ON hearth_data.identity_creations (client_key, created_at);
CREATE INDEX identity_creations_created_at_idx ON hearth_data.identity_creations (created_at);

DROP FUNCTION hearth.create_session(text, text, integer, interval, interval, jsonb);
