-- sweep_presence: participants with no heartbeat for p_timeout (default: the presence_timeout setting)
-- leave with reason timeout (presence.leave); an emptied pairing or match session ends. Returns how
-- many left. Sessions locked by someone else are left for the next run. pg_cron: every minute.
-- HT400 for a non-positive timeout or one over 100 years (p_now minus it would overflow).
CREATE OR REPLACE FUNCTION hearth.sweep_presence(
    p_timeout interval DEFAULT NULL,
    p_now timestamptz DEFAULT now()
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz;
    v_sessions uuid[];
    v_participant_id uuid;
    v_count integer := 0;
BEGIN
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    PERFORM hearth_data.require(p_timeout IS NULL OR (p_timeout > interval '0' AND p_timeout <= interval '100 years'),
                                'p_timeout must be positive and at most 100 years');
    v_cutoff := p_now - COALESCE(p_timeout, hearth_data.setting_interval('presence_timeout'));

    -- One pass over the narrow heartbeat table finds the sessions with stale presence.
    v_sessions := ARRAY(
        SELECT s.session_id FROM hearth_data.sessions s
         WHERE s.session_id IN (SELECT pr.session_id FROM hearth_data.presence pr WHERE pr.last_seen_at < v_cutoff)
         ORDER BY s.session_id
           FOR UPDATE SKIP LOCKED);
    IF cardinality(v_sessions) = 0 THEN
        RETURN 0;
    END IF;
    -- Locks in participant order; a row refreshed meanwhile is re-checked and drops out.
    FOR v_participant_id IN
        SELECT pr.participant_id FROM hearth_data.presence pr
         WHERE pr.session_id = ANY (v_sessions) AND pr.last_seen_at < v_cutoff
         ORDER BY pr.participant_id
           FOR UPDATE
    LOOP
        IF hearth_data.remove_participant(v_participant_id, 'timeout', p_now) THEN
            v_count := v_count + 1;
        END IF;
    END LOOP;
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION hearth.sweep_presence(interval, timestamptz) IS
    'Participants silent for presence_timeout leave with reason timeout; returns how many. pg_cron: every minute.';
REVOKE ALL ON FUNCTION hearth.sweep_presence(interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.sweep_presence(interval, timestamptz) TO hearth_app;
