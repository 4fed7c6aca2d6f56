-- close_session: marks an open session expired or ended and emits session.expired / session.ended.
-- The caller holds the session's row lock and has already removed its presence where that matters.
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
BEGIN
    UPDATE hearth_data.sessions
       SET status = p_status, closed_at = p_now, close_reason = p_reason
     WHERE session_id = p_session_id AND status IN ('waiting', 'active');
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM hearth_data.emit_event('session', p_session_id, 'session.' || p_status,
                                   jsonb_build_object('reason', p_reason), p_now);
    RETURN true;
END
$$;

COMMENT ON FUNCTION hearth_data.close_session(uuid, text, text, timestamptz)
    IS 'Closes an open session as expired or ended and emits the matching event. Caller holds the lock.';
REVOKE ALL ON FUNCTION hearth_data.close_session(uuid, text, text, timestamptz) FROM PUBLIC;
