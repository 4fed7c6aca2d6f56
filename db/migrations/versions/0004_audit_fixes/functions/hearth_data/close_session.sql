-- close_session: marks an open session expired or ended and emits session.expired / session.ended.
-- A match session's open match is finished with it (action 'left' when it ended, 'expired' when it
-- expired: both identities go idle), whichever way the session closed.
-- The caller holds the session's row lock and has already removed its presence.
-- Returns false when the session was not open.
CREATE OR REPLACE FUNCTION hearth_data.close_session(
    p_session_id uuid,
    p_status text,
    p_reason text,
    p_now timestamptz
)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_kind text;
BEGIN
    UPDATE hearth_data.sessions
       SET status = p_status, closed_at = p_now, close_reason = p_reason
     WHERE session_id = p_session_id AND status IN ('waiting', 'active')
    RETURNING kind INTO v_kind;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM hearth_data.emit_event('session', p_session_id, 'session.' || p_status,
                                   jsonb_build_object('reason', p_reason), p_now);
    IF v_kind = 'match' AND EXISTS (SELECT FROM hearth_data.matches m
                                     WHERE m.session_id = p_session_id AND m.ended_at IS NULL) THEN
        PERFORM hearth_data.finish_match(p_session_id, NULL,
                                         CASE p_status WHEN 'expired' THEN 'expired' ELSE 'left' END, p_now);
    END IF;
    RETURN true;
END
$$;

COMMENT ON FUNCTION hearth_data.close_session(uuid, text, text, timestamptz)
    IS 'Closes an open session as expired or ended (its match too) and emits the matching event. Caller holds the lock.';
REVOKE ALL ON FUNCTION hearth_data.close_session(uuid, text, text, timestamptz) FROM PUBLIC;
