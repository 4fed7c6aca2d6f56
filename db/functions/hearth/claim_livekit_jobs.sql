-- claim_livekit_jobs: up to p_limit due LiveKit room jobs for one worker, leased for p_lease so that
-- other workers (SKIP LOCKED, lease) leave them alone; a crashed worker's lease runs out and the job
-- is claimed again. Returns (job_id, kind, room, session_id, attempts). HT400 bad limit or lease.
CREATE OR REPLACE FUNCTION hearth.claim_livekit_jobs(
    p_limit integer DEFAULT 10,
    p_lease interval DEFAULT '30 seconds',
    p_now timestamptz DEFAULT now()
)
RETURNS TABLE (job_id bigint, kind text, room text, session_id uuid, attempts integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM hearth_data.require(p_limit BETWEEN 1 AND 1000, 'p_limit must be between 1 and 1000');
    PERFORM hearth_data.require(p_lease > interval '0' AND p_lease <= interval '1 hour',
                                'p_lease must be positive and at most an hour');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    RETURN QUERY
    UPDATE hearth_data.livekit_jobs j SET leased_until = p_now + p_lease
     WHERE j.job_id IN (
           SELECT j2.job_id FROM hearth_data.livekit_jobs j2
            WHERE j2.run_at <= p_now AND (j2.leased_until IS NULL OR j2.leased_until <= p_now)
            ORDER BY j2.run_at
            LIMIT p_limit
              FOR UPDATE SKIP LOCKED)
    RETURNING j.job_id, j.kind, j.room, j.session_id, j.attempts;
END
$$;

COMMENT ON FUNCTION hearth.claim_livekit_jobs(integer, interval, timestamptz) IS
    'Claims due LiveKit room jobs for a worker (SKIP LOCKED, with a lease).';
REVOKE ALL ON FUNCTION hearth.claim_livekit_jobs(integer, interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.claim_livekit_jobs(integer, interval, timestamptz) TO hearth_app;
