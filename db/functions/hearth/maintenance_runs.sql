-- maintenance_runs: the maintenance jobs the app has run itself (where pg_cron does not), each with its
-- period, the instance that ran it last, its last run and result, and its counts of runs and failures.
-- pg_cron's own runs are in cron.job_run_details of pg_cron's database (`hearth jobs` reads both).
CREATE OR REPLACE FUNCTION hearth.maintenance_runs()
RETURNS TABLE (
    job text,
    every interval,
    instance text,
    last_started_at timestamptz,
    last_finished_at timestamptz,
    last_succeeded boolean,
    last_result text,
    runs bigint,
    failures bigint
)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.job, r.every, r.instance, r.last_started_at, r.last_finished_at, r.last_succeeded,
           r.last_result, r.runs, r.failures
      FROM hearth_data.maintenance_runs r
     ORDER BY r.job;
$$;

COMMENT ON FUNCTION hearth.maintenance_runs() IS
    'The maintenance jobs the app ran itself (HEARTH_MAINTENANCE, where pg_cron does not run them): period, '
    'instance, last start and finish, whether the last run succeeded and its result, runs and failures. '
    'Read-only.';
REVOKE ALL ON FUNCTION hearth.maintenance_runs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.maintenance_runs() TO hearth_app;
