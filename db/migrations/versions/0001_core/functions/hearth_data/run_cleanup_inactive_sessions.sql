-- run_cleanup_inactive_sessions: the pg_cron job behind cleanup_inactive_sessions. Same batches, but it
-- commits after each one, so no row lock is held for longer than one batch.
-- No SET clause (search_path): a procedure with one cannot COMMIT ("invalid transaction termination").
-- Every name below is schema-qualified instead.
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
