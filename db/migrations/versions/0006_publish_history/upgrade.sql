-- Hearth 0006, run by the migrating role before the functions are loaded (as hearth_owner): the role
-- hearth_publisher (hearth.publish), the session archive with what keeps it complete, the archive
-- settings, and the index room health reads LiveKit's webhooks by.

-- Roles are the cluster's: another database may have created it already.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hearth_publisher') THEN
        CREATE ROLE hearth_publisher NOLOGIN;
    END IF;
END
$$;

SET ROLE hearth_owner;
GRANT USAGE ON SCHEMA hearth TO hearth_publisher;

ALTER TABLE hearth_data.settings DROP CONSTRAINT settings_value_type_check;
ALTER TABLE hearth_data.settings
    ADD CONSTRAINT settings_value_type_check CHECK (value_type IN ('interval', 'integer', 'boolean'));
INSERT INTO hearth_data.settings (key, value, value_type, description) VALUES
    ('archive_retention',     '30 days',    'interval', 'archived session summaries older than this are deleted'),
    ('archive_messages',      'false',      'boolean',  'a session''s archive also keeps its messages (message and app.* events)');

-- Counted from now on as events are emitted; for the sessions open today, what the table still holds.
ALTER TABLE hearth_data.sessions ADD COLUMN message_count bigint NOT NULL DEFAULT 0;
UPDATE hearth_data.sessions s SET message_count = c.n
  FROM (SELECT e.stream_id, count(*) AS n FROM hearth_data.events e
         WHERE e.scope = 'session' AND (e.type = 'message' OR e.type LIKE 'app.%')
         GROUP BY e.stream_id) c
 WHERE s.session_id = c.stream_id;

CREATE TYPE hearth_data.archived_participant AS (
    participant_id uuid,
    identity_id    uuid,
    display_name   text,
    role           text,
    joined_at      timestamptz,
    left_at        timestamptz,
    leave_reason   text
);
CREATE TYPE hearth_data.archived_message AS (
    seq        bigint,
    type       text,
    created_at timestamptz,
    payload    jsonb
);

CREATE TABLE hearth_data.session_archive (
    session_id        uuid PRIMARY KEY,
    kind              text NOT NULL,
    name              text,
    created_at        timestamptz NOT NULL,
    ended_at          timestamptz NOT NULL,
    end_reason        text,
    participants      hearth_data.archived_participant[] NOT NULL,
    message_count     bigint NOT NULL,
    event_count       bigint NOT NULL,
    messages          hearth_data.archived_message[],
    archived_at       timestamptz NOT NULL
);
CREATE INDEX session_archive_ended_at_idx ON hearth_data.session_archive (ended_at);

CREATE TABLE hearth_data.archive_pending_participants (
    participant_id uuid PRIMARY KEY,
    session_id     uuid NOT NULL,
    identity_id    uuid NOT NULL,
    display_name   text,
    role           text NOT NULL,
    joined_at      timestamptz NOT NULL,
    left_at        timestamptz,
    leave_reason   text
);
CREATE INDEX archive_pending_participants_session_idx ON hearth_data.archive_pending_participants (session_id);

CREATE TABLE hearth_data.archive_pending_messages (
    session_id uuid NOT NULL,
    seq        bigint NOT NULL,
    type       text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE INDEX livekit_events_room_idx ON hearth_data.livekit_events (room, received_at);
RESET ROLE;
