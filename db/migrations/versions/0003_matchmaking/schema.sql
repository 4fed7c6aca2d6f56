-- Hearth 0003: 1:1 matchmaking and LiveKit rooms. Identity states, matches, the rematch cooldown, an
-- outbox of LiveKit room jobs (written in the same transaction as the match), and LiveKit's webhook
-- events kept for idempotency.

ALTER TABLE hearth_data.identities
    ADD COLUMN match_state text NOT NULL DEFAULT 'idle'
        CHECK (match_state IN ('idle', 'waiting', 'connecting', 'in_call')),
    ADD COLUMN queued_at timestamptz,
    ADD COLUMN match_session_id uuid;

-- match_waiting: the queue, oldest first.
CREATE INDEX identities_queue_idx ON hearth_data.identities (queued_at, identity_id) WHERE match_state = 'waiting';

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

CREATE TABLE hearth_data.livekit_events (
    event_id    text PRIMARY KEY,
    event       text NOT NULL,
    room        text,
    identity    text,
    created_at  timestamptz,
    received_at timestamptz NOT NULL
);
CREATE INDEX livekit_events_received_at_idx ON hearth_data.livekit_events (received_at);

GRANT SELECT ON hearth_data.matches, hearth_data.match_cooldowns, hearth_data.livekit_jobs,
    hearth_data.livekit_events TO hearth_admin;
