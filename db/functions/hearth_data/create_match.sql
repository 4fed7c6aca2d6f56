-- create_match: pairs two waiting identities (their rows locked by the caller): a match session with
-- two places, a LiveKit room to create (an outbox job, same transaction), both identities connecting,
-- match.found to each. Returns the match session id.
CREATE OR REPLACE FUNCTION hearth_data.create_match(p_a uuid, p_b uuid, p_now timestamptz)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session_id uuid;
    v_room text;
BEGIN
    -- A call outlives Hearth's own traffic: the match ends by end_match, LiveKit, or the reaper.
    SELECT s.session_id INTO v_session_id
      FROM hearth.create_session('match', NULL, 2, interval '6 hours', NULL,
                                 jsonb_build_object('identities', jsonb_build_array(p_a, p_b))) s;
    v_room := 'hearth-match-' || v_session_id;
    INSERT INTO hearth_data.matches (session_id, identity_a, identity_b, room, created_at)
    VALUES (v_session_id, p_a, p_b, v_room, p_now);
    INSERT INTO hearth_data.livekit_jobs (kind, room, session_id, run_at, created_at)
    VALUES ('create_room', v_room, v_session_id, p_now, p_now);
    UPDATE hearth_data.identities
       SET match_state = 'connecting', match_session_id = v_session_id, queued_at = NULL,
           last_active_at = GREATEST(last_active_at, p_now)
     WHERE identity_id IN (p_a, p_b);
    PERFORM hearth_data.emit_event('identity', p_a, 'match.found',
        jsonb_build_object('match_session_id', v_session_id, 'peer_identity_id', p_b), p_now);
    PERFORM hearth_data.emit_event('identity', p_b, 'match.found',
        jsonb_build_object('match_session_id', v_session_id, 'peer_identity_id', p_a), p_now);
    PERFORM pg_notify('hearth_livekit', '');
    RETURN v_session_id;
END
$$;

COMMENT ON FUNCTION hearth_data.create_match(uuid, uuid, timestamptz)
    IS 'Creates a match of two locked waiting identities: session, room job, states, match.found.';
REVOKE ALL ON FUNCTION hearth_data.create_match(uuid, uuid, timestamptz) FROM PUBLIC;
