-- finish_livekit_job: a worker reports a claimed job. p_error NULL: done (a created room is marked
-- created, a deleted one deleted). Otherwise the job is retried with exponential backoff and jitter
-- (0.25 s doubling, at most 30 s) until p_max_attempts; then a room that could not be created rolls
-- its match back (both identities waiting again, match.ended with action failed), and a room that
-- could not be deleted is left to the reconciler. Returns done, retry, failed or gone (no such job).
CREATE OR REPLACE FUNCTION hearth.finish_livekit_job(
    p_job_id bigint,
    p_error text DEFAULT NULL,
    p_max_attempts integer DEFAULT 6,
    p_now timestamptz DEFAULT now()
)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job hearth_data.livekit_jobs%ROWTYPE;
    v_ended_at timestamptz;
BEGIN
    PERFORM hearth_data.require(p_job_id IS NOT NULL, 'p_job_id must not be null');
    PERFORM hearth_data.require(p_max_attempts BETWEEN 1 AND 100, 'p_max_attempts must be between 1 and 100');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    SELECT * INTO v_job FROM hearth_data.livekit_jobs j WHERE j.job_id = p_job_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'gone';
    END IF;
    IF p_error IS NULL THEN
        DELETE FROM hearth_data.livekit_jobs WHERE job_id = p_job_id;
        IF v_job.kind = 'create_room' THEN
            UPDATE hearth_data.matches SET room_state = 'created', room_created_at = p_now
             WHERE session_id = v_job.session_id AND room_state = 'pending';
        ELSE
            UPDATE hearth_data.matches SET room_state = 'deleted' WHERE session_id = v_job.session_id;
        END IF;
        RETURN 'done';
    END IF;
    IF v_job.attempts + 1 < p_max_attempts THEN
        UPDATE hearth_data.livekit_jobs
           SET attempts = attempts + 1, leased_until = NULL, last_error = left(p_error, 500),
               run_at = p_now + LEAST(interval '30 seconds', interval '250 milliseconds' * 2 ^ attempts)
                                * (0.5 + random())
         WHERE job_id = p_job_id;
        RETURN 'retry';
    END IF;
    DELETE FROM hearth_data.livekit_jobs WHERE job_id = p_job_id;
    IF v_job.kind = 'create_room' THEN
        -- db/schema.sql's lock order: the job, then the match's session row, then the match.
        PERFORM FROM hearth_data.sessions s WHERE s.session_id = v_job.session_id FOR UPDATE;
        SELECT m.ended_at INTO v_ended_at FROM hearth_data.matches m WHERE m.session_id = v_job.session_id FOR UPDATE;
        IF FOUND THEN
            UPDATE hearth_data.matches SET room_state = 'failed' WHERE session_id = v_job.session_id;
            IF v_ended_at IS NULL THEN
                PERFORM hearth_data.finish_match(v_job.session_id, NULL, 'failed', p_now);
            END IF;
        END IF;
    END IF;
    RETURN 'failed';
END
$$;

COMMENT ON FUNCTION hearth.finish_livekit_job(bigint, text, integer, timestamptz) IS
    'Reports a LiveKit job: done, or retried with backoff; a room never created rolls its match back.';
REVOKE ALL ON FUNCTION hearth.finish_livekit_job(bigint, text, integer, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.finish_livekit_job(bigint, text, integer, timestamptz) TO hearth_app;
