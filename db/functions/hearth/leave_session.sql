-- leave_session: a participant leaves; false if it had already left. Emits presence.leave; when the
-- last participant leaves a pairing or match session, the session ends (session.ended).
-- HT400 bad arguments or reason (left, timeout, inactive, expired), HT404 no such participant.
CREATE OR REPLACE FUNCTION hearth.leave_session(
    p_participant_id uuid,
    p_reason text DEFAULT 'left',
    p_now timestamptz DEFAULT now()
)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session_id uuid;
BEGIN
    PERFORM hearth_data.require(p_participant_id IS NOT NULL, 'p_participant_id must not be null');
    PERFORM hearth_data.require(p_reason IN ('left', 'timeout', 'inactive', 'expired'),
                                'p_reason must be left, timeout, inactive or expired');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');

    SELECT pa.session_id INTO v_session_id FROM hearth_data.participants pa
     WHERE pa.participant_id = p_participant_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no participant %', p_participant_id USING ERRCODE = 'HT404';
    END IF;
    PERFORM FROM hearth_data.sessions s WHERE s.session_id = v_session_id FOR UPDATE;
    RETURN hearth_data.remove_participant(p_participant_id, p_reason, p_now);
END
$$;

COMMENT ON FUNCTION hearth.leave_session(uuid, text, timestamptz) IS
    'A participant leaves (presence.leave); false if already gone. Ends an emptied pairing or match session.';
REVOKE ALL ON FUNCTION hearth.leave_session(uuid, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.leave_session(uuid, text, timestamptz) TO hearth_app;
