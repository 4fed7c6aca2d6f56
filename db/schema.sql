-- Hearth's schema as it is at head: roles, schemas, tables, indexes, grants. The functions are the files
-- under db/functions/, loaded as hearth_owner. Nothing runs this file to install Hearth (the migrations
-- do); the test suite builds a database from it and the function files and compares it with a migrated
-- one, so it must say exactly what the migrations leave behind (a revision changes this file in the same
-- commit).
--
-- Lock order. Every function takes row locks in this order, so no two of them deadlock (revision 0001's
-- header stated an earlier rule, which matchmaking broke: ending a match locked the match, then its
-- session, while cleanup held the session and reached the match through the cascade).
--  1. A LiveKit job row (finish_livekit_job) before anything else.
--  2. Identity rows before session rows only when the sessions are then taken with SKIP LOCKED
--     (match_waiting creates new ones, cleanup_inactive_identities skips busy ones): never waits.
--  3. Session rows: interactive calls wait for at most one; periodic calls take several in session_id
--     order with SKIP LOCKED (what they skip, the next run does).
--  4. Then only rows that hang off the sessions held: their presence rows, all at once and in
--     participant_id order (a function that handles several sessions locks the presence of all of them
--     before the first is changed); a match session's match row; the match's two identities in
--     identity_id order. A match is never locked before its session.
--  5. touch() locks presence rows in participant_id order: it finds them only through an index scan of
--     presence_pkey with the id array (its SET clauses rule out other scans; a forward btree scan visits
--     the ids in order), never through a join, whose plan would decide the order. Sessions only with
--     SKIP LOCKED.

-- Roles: hearth_app (the app: EXECUTE on the API), hearth_admin (DBAs: also SELECT on hearth_data, and
-- set_setting), hearth_publisher (EXECUTE on hearth.publish only: an application grants it to its own
-- role, so that its triggers can publish events and do nothing else in Hearth), hearth_owner (owns
-- everything below; NOLOGIN, no superuser, member of nothing, so a SECURITY DEFINER function runs with
-- Hearth's rights only). A migrating role that is not a superuser becomes a member of hearth_owner, and
-- creates Hearth's objects as that role.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hearth_app') THEN
        CREATE ROLE hearth_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hearth_admin') THEN
        CREATE ROLE hearth_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hearth_publisher') THEN
        CREATE ROLE hearth_publisher NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hearth_owner') THEN
        CREATE ROLE hearth_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role('hearth_owner', 'MEMBER') THEN
        EXECUTE format('GRANT hearth_owner TO %I', current_user);
    END IF;
END
$$;
GRANT hearth_app TO hearth_admin;

-- Hearth's database itself: PUBLIC loses TEMP (no temporary objects to shadow a function's types with)
-- and CONNECT (LISTEN/NOTIFY has no privileges of its own: a role that cannot connect cannot listen), which
-- only Hearth's roles keep. Only the database's owner (or a superuser) may change that; otherwise the
-- operator is told what to run.
DO $$
DECLARE
    v_statements text := format('REVOKE TEMPORARY, CONNECT ON DATABASE %1$I FROM PUBLIC; '
                                'GRANT CONNECT ON DATABASE %1$I TO hearth_app, hearth_admin, hearth_publisher;',
                                current_database());
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE v_statements;
    ELSE
        RAISE NOTICE 'Hearth: only the owner of database % may revoke what PUBLIC holds on it. Run as its owner: %',
            current_database(), v_statements;
    END IF;
END
$$;

CREATE SCHEMA hearth AUTHORIZATION hearth_owner;
CREATE SCHEMA hearth_data AUTHORIZATION hearth_owner;
SET ROLE hearth_owner;
COMMENT ON SCHEMA hearth IS 'Hearth SQL API: functions only. Tables live in hearth_data.';
COMMENT ON SCHEMA hearth_data IS 'Hearth private state: tables, triggers, helpers. Not for the app.';

REVOKE ALL ON SCHEMA hearth, hearth_data FROM PUBLIC;
GRANT USAGE ON SCHEMA hearth TO hearth_app, hearth_admin, hearth_publisher;
GRANT USAGE ON SCHEMA hearth_data TO hearth_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE hearth_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE hearth_owner IN SCHEMA hearth_data GRANT SELECT ON TABLES TO hearth_admin;

CREATE TABLE hearth_data.settings (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    value_type  text NOT NULL CHECK (value_type IN ('interval', 'integer', 'boolean')),
    description text NOT NULL
);

INSERT INTO hearth_data.settings (key, value, value_type, description) VALUES
    ('session_idle_timeout',  '1 hour',     'interval', 'a session with no participant activity for this long is expired'),
    ('presence_timeout',      '90 seconds', 'interval', 'a participant with no heartbeat for this long has left'),
    ('heartbeat_interval',    '30 seconds', 'interval', 'how often clients are told to send a heartbeat'),
    ('identity_idle_timeout', '30 minutes', 'interval', 'anonymous identities inactive this long are deleted'),
    ('pairing_ttl',           '10 minutes', 'interval', 'a display''s code is valid this long unless paired'),
    ('event_retention',       '1 hour',     'interval', 'events older than this may be pruned'),
    ('pairing_max_failures',  '10',         'integer',  'failed code attempts per client key per 10 minutes'),
    ('rematch_cooldown',      '10 minutes', 'interval', 'identities that skipped each other are not re-matched for this long'),
    ('archive_retention',     '30 days',    'interval', 'archived session summaries older than this are deleted'),
    ('archive_messages',      'false',      'boolean',  'a session''s archive also keeps its messages (message and app.* events)'),
    ('frame_rate_limit',      '50',         'integer',  'durable frames (message, signal) per second per socket, bursts of 4x (4429 past it)'),
    ('broadcast_rate_limit',  '120',        'integer',  'broadcast frames per second per socket, bursts of 2x (dropped past it)'),
    ('identity_rate_limit',   '30',         'integer',  'identities one client address may create per minute'),
    ('max_open_sessions_per_identity', '20', 'integer', 'open rooms one identity created plus displays it registered'),
    ('max_sockets_per_identity', '10',      'integer',  'websockets one identity may hold at once on one instance'),
    ('event_partition_interval', '15 minutes', 'interval', 'the span of each partition of the events table (create_event_partitions)');

CREATE TABLE hearth_data.identities (
    identity_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    external_id      text UNIQUE,
    display_name     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Direct API activity only; presence and participation count as activity too (see cleanup).
    last_active_at   timestamptz NOT NULL DEFAULT now(),
    -- Sequence of the identity's own event stream (match.found, match.ended).
    event_seq        bigint NOT NULL DEFAULT 0,
    match_state      text NOT NULL DEFAULT 'idle' CHECK (match_state IN ('idle', 'waiting', 'connecting', 'in_call')),
    queued_at        timestamptz,
    match_session_id uuid,
    -- emitted_at of the stream's newest event: the next one is never earlier.
    last_event_at    timestamptz
) WITH (fillfactor = 90);

CREATE INDEX identities_anonymous_last_active_idx
    ON hearth_data.identities (last_active_at) WHERE external_id IS NULL;
-- match_waiting: the queue, oldest first.
CREATE INDEX identities_queue_idx ON hearth_data.identities (queued_at, identity_id) WHERE match_state = 'waiting';

CREATE TABLE hearth_data.sessions (
    session_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind             text NOT NULL CHECK (kind IN ('room', 'pairing', 'match')),
    name             text,
    code             text NOT NULL,
    status           text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'active', 'expired', 'ended')),
    max_participants integer,
    -- NULL: follow the session_idle_timeout setting.
    idle_timeout     interval,
    expires_at       timestamptz,
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    -- last_activity_at + effective idle timeout, kept by trigger sessions_idle_deadline.
    idle_deadline    timestamptz NOT NULL,
    due_at           timestamptz GENERATED ALWAYS AS (LEAST(idle_deadline, expires_at)) STORED,
    closed_at        timestamptz,
    close_reason     text,
    event_seq        bigint NOT NULL DEFAULT 0,
    -- emitted_at of the stream's newest event: the next one is never earlier.
    last_event_at    timestamptz,
    -- Events of type message and app.* so far, kept as they are emitted (emit_event), so the archive
    -- counts them whatever was pruned or deleted with an identity. event_seq counts every event.
    message_count    bigint NOT NULL DEFAULT 0,
    -- The identity that created it over HTTP (create_session's p_created_by), for
    -- max_open_sessions_per_identity. No foreign key: an identity's cleanup leaves its sessions alone.
    created_by       uuid
) WITH (fillfactor = 80);

-- Codes are unique among open sessions only; a closed session's code may be reused.
CREATE UNIQUE INDEX sessions_open_code_key
    ON hearth_data.sessions (code) WHERE status IN ('waiting', 'active');
-- create_session: an identity's open sessions, for max_open_sessions_per_identity.
CREATE INDEX sessions_open_created_by_idx
    ON hearth_data.sessions (created_by) WHERE created_by IS NOT NULL AND status IN ('waiting', 'active');
-- expire_sessions and check_session_expiry: open sessions by their next deadline.
CREATE INDEX sessions_open_due_idx
    ON hearth_data.sessions (due_at) WHERE status IN ('waiting', 'active');
-- cleanup_inactive_sessions with an explicit p_max_idle.
CREATE INDEX sessions_open_last_activity_idx
    ON hearth_data.sessions (last_activity_at) WHERE status IN ('waiting', 'active');
-- cleanup_inactive_sessions: closed sessions waiting to be deleted.
CREATE INDEX sessions_closed_idx
    ON hearth_data.sessions (closed_at) WHERE status IN ('expired', 'ended');
-- pair_controller: codes of pairing sessions, newest first, closed ones included (HT410, not HT404).
CREATE INDEX sessions_pairing_code_idx ON hearth_data.sessions (code, created_at) WHERE kind = 'pairing';

CREATE TABLE hearth_data.participants (
    participant_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id     uuid NOT NULL REFERENCES hearth_data.sessions ON DELETE CASCADE,
    identity_id    uuid NOT NULL REFERENCES hearth_data.identities ON DELETE CASCADE,
    role           text NOT NULL,
    joined_at      timestamptz NOT NULL,
    left_at        timestamptz,
    leave_reason   text
);

-- One present participant per identity and session: joining again returns it.
CREATE UNIQUE INDEX participants_present_key
    ON hearth_data.participants (session_id, identity_id) WHERE left_at IS NULL;
CREATE INDEX participants_session_idx ON hearth_data.participants (session_id);
CREATE INDEX participants_identity_idx ON hearth_data.participants (identity_id);

-- The heartbeat table: a row per present participant, narrow, and no index on last_seen_at, so that
-- touch() is a HOT update. sweep_presence scans it.
CREATE TABLE hearth_data.presence (
    participant_id uuid PRIMARY KEY REFERENCES hearth_data.participants ON DELETE CASCADE,
    session_id     uuid NOT NULL,
    last_seen_at   timestamptz NOT NULL
) WITH (fillfactor = 70);

CREATE INDEX presence_session_idx ON hearth_data.presence (session_id);

-- Events of session streams (scope 'session') and identity streams (scope 'identity'), keyed by the
-- stream's id and a per-stream sequence number allocated under the stream row's lock (commit order).
-- Partitioned by emitted_at: create_event_partitions makes partitions of event_partition_interval ahead of
-- time (named events_pYYYYMMDD_HHMMSS after their lower bound, UTC), prune_events drops whole ones.
-- A primary key of a partitioned table must hold the partition key, so it is (stream_id, seq, emitted_at):
-- (stream_id, seq) stays unique because seq comes from the stream row's counter (event_seq), raised under
-- that row's lock and never lowered, not because of this index, which is there for reads by (stream_id,
-- seq) (events_since, event_frames, resume_streams: one index scan per partition, merged in seq order).
CREATE TABLE hearth_data.events (
    stream_id  uuid NOT NULL,
    seq        bigint NOT NULL,
    scope      text NOT NULL CHECK (scope IN ('session', 'identity')),
    type       text NOT NULL,
    payload    jsonb NOT NULL,
    -- The time the writer acted at (p_now): the frame's `at`.
    created_at timestamptz NOT NULL,
    -- Taken when the seq is allocated, under the stream row's lock, and never earlier than the stream's
    -- previous event: it rises with seq in every stream. The partition key: dropping the oldest partition
    -- only ever cuts a stream's oldest events, never one in the middle.
    emitted_at timestamptz NOT NULL,
    PRIMARY KEY (stream_id, seq, emitted_at)
) PARTITION BY RANGE (emitted_at);

-- Where an event goes when no partition covers its emitted_at (create_event_partitions stopped, or
-- before its first run): nothing is refused. prune_events deletes its old rows (by this index); the next
-- partition created starts after its newest row. Revision 0009 made the table events was before it this
-- partition, rows and all.
CREATE TABLE hearth_data.events_default PARTITION OF hearth_data.events DEFAULT;
CREATE INDEX events_default_emitted_at_idx ON hearth_data.events_default (emitted_at);

-- Failed pairing code attempts per client key, for rate limiting.
CREATE TABLE hearth_data.pairing_failures (
    client_key text NOT NULL,
    failed_at  timestamptz NOT NULL
);
CREATE INDEX pairing_failures_key_idx ON hearth_data.pairing_failures (client_key, failed_at);
CREATE INDEX pairing_failures_failed_at_idx ON hearth_data.pairing_failures (failed_at);

-- Anonymous identities created per client key in the last minute, for identity_rate_limit.
CREATE TABLE hearth_data.identity_creations (
    client_key text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX identity_creations_key_idx ON hearth_data.identity_creations (client_key, created_at);
CREATE INDEX identity_creations_created_at_idx ON hearth_data.identity_creations (created_at);

-- 1:1 matches: the match session, its two identities, its LiveKit room and what LiveKit's webhooks said
-- of each side.
CREATE TABLE hearth_data.matches (
    session_id      uuid PRIMARY KEY REFERENCES hearth_data.sessions ON DELETE CASCADE,
    identity_a      uuid NOT NULL,
    identity_b      uuid NOT NULL,
    room            text NOT NULL UNIQUE,
    room_state      text NOT NULL DEFAULT 'pending' CHECK (room_state IN ('pending', 'created', 'failed', 'deleted')),
    room_created_at timestamptz,
    created_at      timestamptz NOT NULL,
    -- What LiveKit's webhooks said of each side: a leave of an older participant sid, or older than what
    -- is known, is ignored.
    a_joined_at     timestamptz,
    a_left_at       timestamptz,
    a_seen_at       timestamptz,
    a_sid           text,  -- LiveKit participant sid of the side's newest join
    b_joined_at     timestamptz,
    b_left_at       timestamptz,
    b_seen_at       timestamptz,
    b_sid           text,
    ended_at        timestamptz,
    end_action      text,
    ended_by        uuid,
    CHECK (identity_a <> identity_b)
);
CREATE INDEX matches_open_idx ON hearth_data.matches (created_at) WHERE ended_at IS NULL;

-- Two identities that skipped each other, kept apart until `until`. identity_low < identity_high.
CREATE TABLE hearth_data.match_cooldowns (
    identity_low  uuid NOT NULL,
    identity_high uuid NOT NULL,
    until         timestamptz NOT NULL,
    PRIMARY KEY (identity_low, identity_high)
);
CREATE INDEX match_cooldowns_until_idx ON hearth_data.match_cooldowns (until);

-- The outbox: LiveKit calls to make. Workers claim due jobs with SKIP LOCKED and a lease.
CREATE TABLE hearth_data.livekit_jobs (
    job_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('create_room', 'delete_room')),
    room         text NOT NULL,
    session_id   uuid,
    attempts     integer NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL,
    leased_until timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL
);
CREATE INDEX livekit_jobs_run_at_idx ON hearth_data.livekit_jobs (run_at);

-- LiveKit's webhook events, kept for idempotency.
CREATE TABLE hearth_data.livekit_events (
    event_id    text PRIMARY KEY,
    event       text NOT NULL,
    room        text,
    identity    text,
    created_at  timestamptz,
    received_at timestamptz NOT NULL
);
CREATE INDEX livekit_events_received_at_idx ON hearth_data.livekit_events (received_at);
-- livekit_rooms: the newest webhook of each room.
CREATE INDEX livekit_events_room_idx ON hearth_data.livekit_events (room, received_at);

-- The app's own maintenance runs (where pg_cron does not run Hearth's jobs): the last run of each job, for
-- `hearth jobs`. One row per job; pg_cron keeps its own history in cron.job_run_details.
CREATE TABLE hearth_data.maintenance_runs (
    job              text PRIMARY KEY,
    every            interval NOT NULL,
    instance         text NOT NULL,
    last_started_at  timestamptz NOT NULL,
    last_finished_at timestamptz NOT NULL,
    last_succeeded   boolean NOT NULL,
    last_result      text NOT NULL,
    runs             bigint NOT NULL,
    failures         bigint NOT NULL
);

-- An archive keeps its participants and messages as arrays of these rows: building them costs the cleanup
-- batch a fraction of what building JSON does; session_history renders them as JSON when asked.
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

-- Session history: one row per session cleanup_inactive_sessions deleted, written in the same transaction
-- (see cleanup_sessions_batch). Deleted by prune_events once ended_at is older than archive_retention.
CREATE TABLE hearth_data.session_archive (
    session_id        uuid PRIMARY KEY,
    kind              text NOT NULL,
    name              text,
    created_at        timestamptz NOT NULL,
    ended_at          timestamptz NOT NULL,
    end_reason        text,
    -- By joined_at.
    participants      hearth_data.archived_participant[] NOT NULL,
    message_count     bigint NOT NULL,
    event_count       bigint NOT NULL,
    -- The message and app.* events, by seq; NULL when archive_messages was off.
    messages          hearth_data.archived_message[],
    archived_at       timestamptz NOT NULL
);
-- archived_sessions (newest first) and the retention delete.
CREATE INDEX session_archive_ended_at_idx ON hearth_data.session_archive (ended_at);

-- What the archive of a session not yet archived needs but the live tables lost: participants of
-- identities that cleanup_inactive_identities deleted (names and times), and, while archive_messages is on,
-- messages that prune_events or cleanup_inactive_identities removed from the events table. The archive
-- reads them with the live rows and deletes them; prune_events deletes any left behind by a session that is
-- gone.
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

GRANT SELECT ON ALL TABLES IN SCHEMA hearth_data TO hearth_admin;
RESET ROLE;
