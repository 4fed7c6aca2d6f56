-- remove_participant: a present participant leaves: its presence row goes, the participant row keeps
-- when and why, presence.leave is emitted. When p_end_empty and the last participant leaves a pairing or
-- match session, the session ends (session.ended, reason 'empty').
-- The caller holds the session's row lock (and, in periodic functions, the presence row locks).
-- Returns false when the participant had already left.
CREATE OR REPLACE FUNCTION hearth_data.remove_participant(
    p_participant_id uuid,
    p_reason text,
    p_now timestamptz,
    p_end_empty boolean DEFAULT true
)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session_id uuid;
    v_kind text;
BEGIN
    UPDATE hearth_data.participants
       SET left_at = p_now, leave_reason = p_reason
     WHERE participant_id = p_participant_id AND left_at IS NULL
    RETURNING session_id INTO v_session_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM hearth_data.presence WHERE participant_id = p_participant_id;
    -- Only a deliberate leave is participant activity; a timeout or an expiry is the absence of it.
    PERFORM hearth_data.emit_event('session', v_session_id, 'presence.leave',
        jsonb_build_object('participant_id', p_participant_id, 'reason', p_reason),
        p_now, p_reason = 'left');

    IF p_end_empty THEN
        SELECT s.kind INTO v_kind FROM hearth_data.sessions s WHERE s.session_id = v_session_id;
        IF v_kind IN ('pairing', 'match')
           AND NOT EXISTS (SELECT FROM hearth_data.presence pr WHERE pr.session_id = v_session_id) THEN
            PERFORM hearth_data.close_session(v_session_id, 'ended', 'empty', p_now);
        END IF;
    END IF;
    RETURN true;
END
$$;

COMMENT ON FUNCTION hearth_data.remove_participant(uuid, text, timestamptz, boolean)
    IS 'A present participant leaves (presence.leave); ends an emptied pairing/match session.';
REVOKE ALL ON FUNCTION hearth_data.remove_participant(uuid, text, timestamptz, boolean) FROM PUBLIC;
