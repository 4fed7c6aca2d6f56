-- record_maintenance_run: the app's maintenance runner (HEARTH_MAINTENANCE, where pg_cron does not run
-- Hearth's jobs) records each run of a job here, so `hearth jobs` can show its last run and result. One row
-- per job: the last run, and how many runs and failures there have been. p_result is the job's return
-- value or its error, cut to 1000 characters. HT400 for a missing or malformed argument.
CREATE OR REPLACE FUNCTION hearth.record_maintenance_run(
    p_job text,
    p_every interval,
    p_instance text,
    p_started_at timestamptz,
    p_succeeded boolean,
    p_result text,
    p_now timestamptz DEFAULT now()
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM hearth_data.require(p_job ~ '^[a-z_]{1,100}$', 'p_job must be a job name (a-z and _, at most 100)');
    PERFORM hearth_data.require(p_every > interval '0' AND p_every <= interval '365 days',
                                'p_every must be positive and at most 365 days');
    PERFORM hearth_data.require(length(p_instance) BETWEEN 1 AND 200, 'p_instance must be 1 to 200 characters');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    PERFORM hearth_data.require(isfinite(p_started_at) AND p_started_at <= p_now,
                                'p_started_at must be a finite time, not after p_now');
    PERFORM hearth_data.require(p_succeeded IS NOT NULL, 'p_succeeded must not be null');
    INSERT INTO hearth_data.maintenance_runs AS r
           (job, every, instance, last_started_at, last_finished_at, last_succeeded, last_result, runs,
            failures)
    VALUES (p_job, p_every, p_instance, p_started_at, p_now, p_succeeded, left(coalesce(p_result, ''), 1000), 1,
            CASE WHEN p_succeeded THEN 0 ELSE 1 END)
    ON CONFLICT (job) DO UPDATE
       SET every = EXCLUDED.every,
           instance = EXCLUDED.instance,
           last_started_at = EXCLUDED.last_started_at,
           last_finished_at = EXCLUDED.last_finished_at,
           last_succeeded = EXCLUDED.last_succeeded,
           last_result = EXCLUDED.last_result,
           runs = r.runs + 1,
           failures = r.failures + EXCLUDED.failures;
END
$$;

COMMENT ON FUNCTION hearth.record_maintenance_run(text, interval, text, timestamptz, boolean, text, timestamptz) IS
    'Records one run of a maintenance job by the app (where pg_cron does not run them): its period, the '
    'instance, when it started (it finished at p_now), whether it succeeded, and its result or error (cut to '
    '1000 characters). Keeps the last run per job, with counts of runs and failures. HT400 for bad arguments.';
REVOKE ALL ON FUNCTION hearth.record_maintenance_run(text, interval, text, timestamptz, boolean, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.record_maintenance_run(text, interval, text, timestamptz, boolean, text, timestamptz) TO hearth_app;
