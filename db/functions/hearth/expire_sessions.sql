-- expire_sessions: every open session due at p_now (idle past its timeout, or past its TTL) becomes
-- expired: its participants leave (presence.leave, reason expired), then session.expired with reason
-- idle, ttl or pairing_timeout (a pairing session still waiting for its controller). Returns the count.
-- Sessions locked by someone else are left for the next run. pg_cron: every minute.
CREATE OR REPLACE FUNCTION hearth.expire_sessions(p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids uuid[];
    v_session record;
    v_participant_id uuid;
BEGIN
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    v_ids := ARRAY(
        SELECT s.session_id FROM hearth_data.sessions s
         WHERE s.status IN ('waiting', 'active') AND s.due_at <= p_now
         ORDER BY s.session_id
           FOR UPDATE SKIP LOCKED);
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;
    -- All presence rows of the batch at once, in participant order (the order touch() locks in).
    PERFORM FROM hearth_data.presence pr WHERE pr.session_id = ANY (v_ids) ORDER BY pr.participant_id FOR UPDATE;

    FOR v_session IN
        SELECT s.session_id, s.kind, s.status, s.expires_at FROM hearth_data.sessions s
         WHERE s.session_id = ANY (v_ids) ORDER BY s.session_id
    LOOP
        FOR v_participant_id IN
            SELECT pr.participant_id FROM hearth_data.presence pr
             WHERE pr.session_id = v_session.session_id ORDER BY pr.participant_id
        LOOP
            PERFORM hearth_data.remove_participant(v_participant_id, 'expired', p_now, false);
        END LOOP;
        PERFORM hearth_data.close_session(v_session.session_id, 'expired',
            hearth_data.expiry_reason(v_session.kind, v_session.status, v_session.expires_at, p_now), p_now);
    END LOOP;
    RETURN cardinality(v_ids);
END
$$;

COMMENT ON FUNCTION hearth.expire_sessions(timestamptz) IS
    'Expires every open session due at p_now (presence.leave + session.expired); returns the count. pg_cron: every minute.';
REVOKE ALL ON FUNCTION hearth.expire_sessions(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.expire_sessions(timestamptz) TO hearth_app;
