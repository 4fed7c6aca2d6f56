-- leave_queue: a waiting identity leaves the queue (idle); an idle one stays idle. Returns the new
-- state. HT404 no such identity, HT409 in a match (end it with end_match).
CREATE OR REPLACE FUNCTION hearth.leave_queue(p_identity_id uuid)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
BEGIN
    PERFORM hearth_data.require(p_identity_id IS NOT NULL, 'p_identity_id must not be null');
    SELECT i.match_state INTO v_state FROM hearth_data.identities i WHERE i.identity_id = p_identity_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no identity %', p_identity_id USING ERRCODE = 'HT404';
    END IF;
    IF v_state IN ('connecting', 'in_call') THEN
        RAISE EXCEPTION 'identity % is in a match: end it instead', p_identity_id USING ERRCODE = 'HT409';
    END IF;
    UPDATE hearth_data.identities SET match_state = 'idle', queued_at = NULL, last_active_at = now()
     WHERE identity_id = p_identity_id;
    RETURN 'idle';
END
$$;

COMMENT ON FUNCTION hearth.leave_queue(uuid) IS 'Takes an identity out of the matchmaking queue; returns its state (idle).';
REVOKE ALL ON FUNCTION hearth.leave_queue(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.leave_queue(uuid) TO hearth_app;
