-- check_session_expiry: true when the session is expired or ended, or would be expired at p_now (idle
-- past its timeout or past its TTL). Read-only. HT404 when the session does not exist.
CREATE OR REPLACE FUNCTION hearth.check_session_expiry(
    p_session_id uuid,
    p_now timestamptz DEFAULT now()
)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status text;
    v_due_at timestamptz;
BEGIN
    PERFORM hearth_data.require(p_session_id IS NOT NULL, 'p_session_id must not be null');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    SELECT s.status, s.due_at INTO v_status, v_due_at FROM hearth_data.sessions s WHERE s.session_id = p_session_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no session %', p_session_id USING ERRCODE = 'HT404';
    END IF;
    RETURN v_status NOT IN ('waiting', 'active') OR v_due_at <= p_now;
END
$$;

COMMENT ON FUNCTION hearth.check_session_expiry(uuid, timestamptz) IS
    'True if the session is over or would be expired at p_now (idle timeout or TTL). Read-only; HT404 if unknown.';
REVOKE ALL ON FUNCTION hearth.check_session_expiry(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.check_session_expiry(uuid, timestamptz) TO hearth_app;
