-- lock_present_participant: for calls made on behalf of a participant (post_message, relay_signal):
-- locks the participant's session row and returns the session id, after checking the participant
-- exists (HT404), is still present (HT403) and its session is open and not due at p_now (HT410).
CREATE OR REPLACE FUNCTION hearth_data.lock_present_participant(p_participant_id uuid, p_now timestamptz)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session_id uuid;
    v_left_at timestamptz;
    v_status text;
    v_due_at timestamptz;
BEGIN
    SELECT pa.session_id INTO v_session_id FROM hearth_data.participants pa
     WHERE pa.participant_id = p_participant_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no participant %', p_participant_id USING ERRCODE = 'HT404';
    END IF;
    SELECT s.status, s.due_at INTO v_status, v_due_at FROM hearth_data.sessions s
     WHERE s.session_id = v_session_id FOR UPDATE;
    IF v_status NOT IN ('waiting', 'active') OR v_due_at <= p_now THEN
        RAISE EXCEPTION 'session % is expired or ended', v_session_id USING ERRCODE = 'HT410';
    END IF;
    SELECT pa.left_at INTO v_left_at FROM hearth_data.participants pa WHERE pa.participant_id = p_participant_id;
    IF v_left_at IS NOT NULL THEN
        RAISE EXCEPTION 'participant % has left the session', p_participant_id USING ERRCODE = 'HT403';
    END IF;
    RETURN v_session_id;
END
$$;

COMMENT ON FUNCTION hearth_data.lock_present_participant(uuid, timestamptz)
    IS 'Locks a present participant''s open session; HT404 unknown, HT403 left, HT410 session over.';
REVOKE ALL ON FUNCTION hearth_data.lock_present_participant(uuid, timestamptz) FROM PUBLIC;
