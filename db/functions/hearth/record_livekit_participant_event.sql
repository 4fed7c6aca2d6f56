-- record_livekit_participant_event: record_livekit_event with the participant's LiveKit sid. Recorded
-- once by event id (false for a duplicate), then applied to the match whose room it names:
--   participant_joined  the side is in the room, under this sid; both sides in -> in_call
--   participant_left    the side left, unless the event is stale: it names an older sid than the
--                       side's newest join (a quick rejoin, livekit#2399), or is older than what is known
--   room_finished       an open match ends (vanished: both wait again)
-- Leaving for good is decided later, by end_abandoned_matches. HT400 bad arguments.
CREATE OR REPLACE FUNCTION hearth.record_livekit_participant_event(
    p_event_id text,
    p_event text,
    p_room text,
    p_identity text,
    p_participant_sid text,
    p_created_at timestamptz
)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_match hearth_data.matches%ROWTYPE;
    v_side text;
    v_seen timestamptz;
    v_sid text;
    v_at timestamptz := COALESCE(p_created_at, now());
BEGIN
    PERFORM hearth_data.require(length(p_event_id) BETWEEN 1 AND 200, 'p_event_id must be 1 to 200 characters');
    PERFORM hearth_data.require(length(p_event) BETWEEN 1 AND 100, 'p_event must be 1 to 100 characters');
    PERFORM hearth_data.require(p_room IS NULL OR length(p_room) <= 300, 'p_room must be at most 300 characters');
    PERFORM hearth_data.require(p_identity IS NULL OR length(p_identity) <= 300,
                                'p_identity must be at most 300 characters');
    PERFORM hearth_data.require(p_participant_sid IS NULL OR length(p_participant_sid) <= 300,
                                'p_participant_sid must be at most 300 characters');
    PERFORM hearth_data.require(p_created_at IS NULL OR isfinite(p_created_at), 'p_created_at must be a finite time');
    INSERT INTO hearth_data.livekit_events (event_id, event, room, identity, created_at, received_at)
    VALUES (p_event_id, p_event, p_room, p_identity, p_created_at, now())
    ON CONFLICT (event_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    -- db/schema.sql's lock order: the match's session row, then the match.
    PERFORM FROM hearth_data.sessions s
     WHERE s.session_id = (SELECT m.session_id FROM hearth_data.matches m WHERE m.room = p_room)
       FOR UPDATE;
    SELECT * INTO v_match FROM hearth_data.matches m WHERE m.room = p_room FOR UPDATE;
    IF NOT FOUND OR v_match.ended_at IS NOT NULL THEN
        RETURN true;
    END IF;
    IF p_event = 'room_finished' THEN
        PERFORM hearth_data.finish_match(v_match.session_id, NULL, 'vanished', now());
        RETURN true;
    END IF;
    IF p_event NOT IN ('participant_joined', 'participant_left') THEN
        RETURN true;
    END IF;
    v_side := CASE p_identity WHEN v_match.identity_a::text THEN 'a' WHEN v_match.identity_b::text THEN 'b' END;
    IF v_side IS NULL THEN
        RETURN true;
    END IF;
    v_seen := CASE v_side WHEN 'a' THEN v_match.a_seen_at ELSE v_match.b_seen_at END;
    v_sid := CASE v_side WHEN 'a' THEN v_match.a_sid ELSE v_match.b_sid END;
    IF p_event = 'participant_left' AND p_participant_sid IS NOT NULL AND v_sid IS NOT NULL THEN
        IF p_participant_sid <> v_sid THEN
            RETURN true;  -- the leave of an older connection of this identity
        END IF;
    ELSIF v_at < v_seen THEN
        RETURN true;  -- older than what we know of this side
    END IF;
    IF v_side = 'a' THEN
        UPDATE hearth_data.matches SET a_seen_at = GREATEST(a_seen_at, v_at),
               a_joined_at = CASE WHEN p_event = 'participant_joined' THEN v_at ELSE a_joined_at END,
               a_sid = CASE WHEN p_event = 'participant_joined' THEN p_participant_sid ELSE a_sid END,
               a_left_at = CASE WHEN p_event = 'participant_left' THEN v_at END
         WHERE session_id = v_match.session_id
        RETURNING * INTO v_match;
    ELSE
        UPDATE hearth_data.matches SET b_seen_at = GREATEST(b_seen_at, v_at),
               b_joined_at = CASE WHEN p_event = 'participant_joined' THEN v_at ELSE b_joined_at END,
               b_sid = CASE WHEN p_event = 'participant_joined' THEN p_participant_sid ELSE b_sid END,
               b_left_at = CASE WHEN p_event = 'participant_left' THEN v_at END
         WHERE session_id = v_match.session_id
        RETURNING * INTO v_match;
    END IF;
    IF v_match.a_joined_at IS NOT NULL AND v_match.b_joined_at IS NOT NULL
       AND v_match.a_left_at IS NULL AND v_match.b_left_at IS NULL THEN
        UPDATE hearth_data.identities SET match_state = 'in_call', last_active_at = now()
         WHERE identity_id IN (v_match.identity_a, v_match.identity_b)
           AND match_session_id = v_match.session_id AND match_state = 'connecting';
    END IF;
    RETURN true;
END
$$;

COMMENT ON FUNCTION hearth.record_livekit_participant_event(text, text, text, text, text, timestamptz) IS
    'record_livekit_event with the participant sid: a leave of an older sid (quick rejoin) is ignored.';
REVOKE ALL ON FUNCTION hearth.record_livekit_participant_event(text, text, text, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.record_livekit_participant_event(text, text, text, text, text, timestamptz)
    TO hearth_app;
