-- Hearth 0008 undone (before the previous function texts are reloaded).
DROP FUNCTION hearth.create_anonymous_identity(text, text, timestamptz);
DROP FUNCTION hearth.identity_for_user(text, text);
DROP FUNCTION hearth_data.check_code_attempts(text, timestamptz);
DROP FUNCTION hearth.create_session(text, text, integer, interval, interval, jsonb, uuid);
DROP TABLE hearth_data.identity_creations;
DROP INDEX hearth_data.sessions_open_created_by_idx;
ALTER TABLE hearth_data.sessions DROP COLUMN created_by;
DELETE FROM hearth_data.settings
 WHERE key IN ('identity_rate_limit', 'max_open_sessions_per_identity', 'max_sockets_per_identity');
