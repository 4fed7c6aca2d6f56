-- Hearth 0006 undone, after the previous function texts were reloaded. Role hearth_publisher stays:
-- other databases of the cluster may use it; here it loses what 0006 gave it.
DROP FUNCTION hearth.publish(uuid, text, jsonb);
DROP FUNCTION hearth.session_history(uuid);
DROP FUNCTION hearth.archived_sessions(timestamptz, integer);
DROP FUNCTION hearth.livekit_rooms(timestamptz);
DROP FUNCTION hearth_data.setting_boolean(text);
DROP TABLE hearth_data.session_archive, hearth_data.archive_pending_participants,
           hearth_data.archive_pending_messages;
DROP TYPE hearth_data.archived_participant, hearth_data.archived_message;
DROP INDEX hearth_data.livekit_events_room_idx;
ALTER TABLE hearth_data.sessions DROP COLUMN message_count;
DELETE FROM hearth_data.settings WHERE key IN ('archive_retention', 'archive_messages');
ALTER TABLE hearth_data.settings DROP CONSTRAINT settings_value_type_check;
ALTER TABLE hearth_data.settings
    ADD CONSTRAINT settings_value_type_check CHECK (value_type IN ('interval', 'integer'));
REVOKE USAGE ON SCHEMA hearth FROM hearth_publisher;
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM hearth_publisher', current_database());
    END IF;
END
$$;
