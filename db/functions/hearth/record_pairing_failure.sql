-- record_pairing_failure: counts one failed code attempt for a client key and returns the key's
-- failures in the last 10 minutes. pair_controller cannot count its own failures: raising HT404 or
-- HT410 rolls back whatever it wrote. So callers (the app) record the failure in a new transaction
-- after such an error. A null key counts nothing (returns 0). HT400 for an over-long key.
CREATE OR REPLACE FUNCTION hearth.record_pairing_failure(
    p_client_key text,
    p_now timestamptz DEFAULT now()
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM hearth_data.require(p_client_key IS NULL OR length(p_client_key) <= 200,
                                'p_client_key must be at most 200 characters');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    IF p_client_key IS NULL THEN
        RETURN 0;
    END IF;
    -- Attempts older than a day are of no use any more: each call clears up to 100 of them.
    DELETE FROM hearth_data.pairing_failures f
     WHERE f.ctid = ANY (ARRAY(SELECT f2.ctid FROM hearth_data.pairing_failures f2
                                WHERE f2.failed_at <= p_now - interval '1 day' LIMIT 100));
    INSERT INTO hearth_data.pairing_failures (client_key, failed_at) VALUES (p_client_key, p_now);
    SELECT count(*) INTO v_count FROM hearth_data.pairing_failures f
     WHERE f.client_key = p_client_key AND f.failed_at > p_now - interval '10 minutes';
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION hearth.record_pairing_failure(text, timestamptz) IS
    'Counts a failed pairing code attempt for a client key; returns its failures in the last 10 minutes.';
REVOKE ALL ON FUNCTION hearth.record_pairing_failure(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.record_pairing_failure(text, timestamptz) TO hearth_app;
