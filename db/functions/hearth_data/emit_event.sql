-- emit_event: appends an event to a session or identity stream and rings hearth_events, in the
-- caller's transaction. The sequence number comes from the stream row's counter, updated here, so the
-- stream row stays locked until commit: within a stream, sequence order is commit order. Its
-- emitted_at is taken there too (the clock, never earlier than the stream's previous event), so it rises
-- with seq in every stream: prune_events deletes by it and can only cut a stream's oldest events.
-- created_at is p_now, the time the caller acted at (the frame's `at`).
-- The NOTIFY carries no frame, only a doorbell: '<stream id> <seq>'. LISTEN/NOTIFY has no privileges,
-- so anyone who can connect can NOTIFY; the relay therefore reads every frame from the events table
-- (hearth.event_frames), and only rows written here are ever delivered.
-- p_activity also records session activity (joins, explicit leaves, messages, signals), unless the
-- session is already due at p_now. A session stream counts its messages (message and app.* events) in the
-- same update, for the archive: event_seq already counts every event.
CREATE OR REPLACE FUNCTION hearth_data.emit_event(
    p_scope text,
    p_stream_id uuid,
    p_type text,
    p_payload jsonb,
    p_now timestamptz,
    p_activity boolean DEFAULT false
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_seq bigint;
    v_emitted_at timestamptz;
BEGIN
    IF p_scope = 'session' THEN
        IF p_activity THEN
            -- A session already due stays due: late activity (a leave, say) does not bring it back.
            UPDATE hearth_data.sessions
               SET event_seq = event_seq + 1,
                   message_count = message_count + (p_type = 'message' OR p_type LIKE 'app.%')::integer,
                   last_event_at = GREATEST(last_event_at, clock_timestamp()),
                   last_activity_at = CASE WHEN due_at > p_now THEN GREATEST(last_activity_at, p_now)
                                           ELSE last_activity_at END
             WHERE session_id = p_stream_id
            RETURNING event_seq, last_event_at INTO v_seq, v_emitted_at;
        ELSE
            UPDATE hearth_data.sessions
               SET event_seq = event_seq + 1,
                   message_count = message_count + (p_type = 'message' OR p_type LIKE 'app.%')::integer,
                   last_event_at = GREATEST(last_event_at, clock_timestamp())
             WHERE session_id = p_stream_id
            RETURNING event_seq, last_event_at INTO v_seq, v_emitted_at;
        END IF;
    ELSE
        UPDATE hearth_data.identities
           SET event_seq = event_seq + 1, last_event_at = GREATEST(last_event_at, clock_timestamp())
         WHERE identity_id = p_stream_id
        RETURNING event_seq, last_event_at INTO v_seq, v_emitted_at;
    END IF;
    IF v_seq IS NULL THEN
        RAISE EXCEPTION 'no % stream %', p_scope, p_stream_id USING ERRCODE = 'HT404';
    END IF;

    INSERT INTO hearth_data.events (stream_id, seq, scope, type, payload, created_at, emitted_at)
    VALUES (p_stream_id, v_seq, p_scope, p_type, p_payload, p_now, v_emitted_at);
    PERFORM pg_notify('hearth_events', p_stream_id::text || ' ' || v_seq);
    RETURN v_seq;
END
$$;

COMMENT ON FUNCTION hearth_data.emit_event(text, uuid, text, jsonb, timestamptz, boolean)
    IS 'Appends an event to a stream (seq in commit order) and rings hearth_events (stream id, seq).';
REVOKE ALL ON FUNCTION hearth_data.emit_event(text, uuid, text, jsonb, timestamptz, boolean) FROM PUBLIC;
