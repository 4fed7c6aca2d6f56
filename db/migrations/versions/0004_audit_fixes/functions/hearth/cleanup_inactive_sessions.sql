-- cleanup_inactive_sessions: deletes sessions that are ended, expired, or inactive for p_max_idle
-- (default: each session's own idle timeout, i.e. session_idle_timeout unless it set one), with their
-- participants, presence and events, in batches of p_batch; returns the number deleted. Open sessions
-- get session.expired first (its row stays until prune_events, for the relay to deliver). Called by hand it runs in the caller's transaction; the pg_cron job
-- (every 15 minutes) runs the same batches with a commit after each.
-- HT400 for a p_max_idle not positive or over 100 years, or a p_batch outside 1..100000.
CREATE OR REPLACE FUNCTION hearth.cleanup_inactive_sessions(
    p_max_idle interval DEFAULT NULL,
    p_batch integer DEFAULT 1000,
    p_now timestamptz DEFAULT now()
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_deleted integer;
    v_total integer := 0;
BEGIN
    PERFORM hearth_data.require(p_max_idle IS NULL OR (p_max_idle > interval '0' AND p_max_idle <= interval '100 years'),
                                'p_max_idle must be positive and at most 100 years');
    PERFORM hearth_data.require(p_batch BETWEEN 1 AND 100000, 'p_batch must be between 1 and 100000');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    LOOP
        v_deleted := hearth_data.cleanup_sessions_batch(p_max_idle, p_batch, p_now);
        v_total := v_total + v_deleted;
        EXIT WHEN v_deleted < p_batch;
    END LOOP;
    RETURN v_total;
END
$$;

COMMENT ON FUNCTION hearth.cleanup_inactive_sessions(interval, integer, timestamptz) IS
    'Deletes ended, expired and inactive sessions with their participants and events, in batches; returns the count. '
    'pg_cron: every 15 minutes.';
REVOKE ALL ON FUNCTION hearth.cleanup_inactive_sessions(interval, integer, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.cleanup_inactive_sessions(interval, integer, timestamptz) TO hearth_app;
