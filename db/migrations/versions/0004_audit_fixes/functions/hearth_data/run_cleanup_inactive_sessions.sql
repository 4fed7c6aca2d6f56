-- run_cleanup_inactive_sessions: the pg_cron job behind cleanup_inactive_sessions. Same batches, but it
-- commits after each one, so no row lock is held for longer than one batch.
-- No SET clause (search_path) and not SECURITY DEFINER: a procedure with either cannot COMMIT ("invalid
-- transaction termination"). So it runs as its caller, the job's owner, with the caller's rights and
-- search_path: it names nothing but the schema-qualified batch function (whose search_path is set) and
-- integer, a keyword that always means pg_catalog.int4. The one such exception, by design.
CREATE OR REPLACE PROCEDURE hearth_data.run_cleanup_inactive_sessions(p_batch integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_deleted integer;
BEGIN
    LOOP
        v_deleted := hearth_data.cleanup_sessions_batch(NULL, p_batch, now());
        COMMIT;
        EXIT WHEN v_deleted < p_batch;
    END LOOP;
END
$$;

COMMENT ON PROCEDURE hearth_data.run_cleanup_inactive_sessions(integer)
    IS 'pg_cron job: cleanup_inactive_sessions in batches, committing after each.';
REVOKE ALL ON PROCEDURE hearth_data.run_cleanup_inactive_sessions(integer) FROM PUBLIC;
