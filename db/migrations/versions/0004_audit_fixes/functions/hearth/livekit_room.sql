-- livekit_room: the LiveKit room a present participant of a session may join: its match's room, or
-- hearth-<session id> for other sessions. HT404 no such session, HT410 the session (or its match) is
-- over, HT403 the participant (known or not) is not present in this session.
CREATE OR REPLACE FUNCTION hearth.livekit_room(p_session_id uuid, p_participant_id uuid)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session hearth_data.sessions%ROWTYPE;
    v_room text;
    v_ended_at timestamptz;
BEGIN
    PERFORM hearth_data.require(p_session_id IS NOT NULL, 'p_session_id must not be null');
    PERFORM hearth_data.require(p_participant_id IS NOT NULL, 'p_participant_id must not be null');
    SELECT * INTO v_session FROM hearth_data.sessions s WHERE s.session_id = p_session_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no session %', p_session_id USING ERRCODE = 'HT404';
    END IF;
    -- Before the presence check: ending a session removes its presence, so its participants get HT410.
    IF v_session.status NOT IN ('waiting', 'active') OR v_session.due_at <= now() THEN
        RAISE EXCEPTION 'session % is expired or ended', p_session_id USING ERRCODE = 'HT410';
    END IF;
    IF NOT EXISTS (SELECT FROM hearth_data.presence pr
                    WHERE pr.participant_id = p_participant_id AND pr.session_id = p_session_id) THEN
        RAISE EXCEPTION 'participant % is not present in session %', p_participant_id, p_session_id
            USING ERRCODE = 'HT403';
    END IF;
    IF v_session.kind <> 'match' THEN
        RETURN 'hearth-' || p_session_id;
    END IF;
    SELECT m.room, m.ended_at INTO v_room, v_ended_at FROM hearth_data.matches m WHERE m.session_id = p_session_id;
    IF v_ended_at IS NOT NULL THEN
        RAISE EXCEPTION 'match % has ended', p_session_id USING ERRCODE = 'HT410';
    END IF;
    RETURN v_room;
END
$$;

COMMENT ON FUNCTION hearth.livekit_room(uuid, uuid) IS
    'The LiveKit room a present participant may join for a session (its match room). HT403 if not present.';
REVOKE ALL ON FUNCTION hearth.livekit_room(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.livekit_room(uuid, uuid) TO hearth_app;
