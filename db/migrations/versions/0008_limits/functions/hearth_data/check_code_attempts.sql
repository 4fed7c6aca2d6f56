-- check_code_attempts: HT429 when p_client_key has pairing_max_failures failed code attempts in the 10
-- minutes before p_now, its DETAIL the whole seconds until one more attempt is allowed (the app's
-- Retry-After: when the failure that frees a place is 10 minutes old). A null key is never limited. Called
-- first by pair_controller and join_by_code, which share the limit.
CREATE OR REPLACE FUNCTION hearth_data.check_code_attempts(p_client_key text, p_now timestamptz)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit integer;
    v_count integer;
    v_frees_at timestamptz;
    v_retry integer;
BEGIN
    IF p_client_key IS NULL THEN
        RETURN;
    END IF;
    v_limit := hearth_data.setting_integer('pairing_max_failures');
    SELECT count(*) INTO v_count FROM hearth_data.pairing_failures f
     WHERE f.client_key = p_client_key AND f.failed_at > p_now - interval '10 minutes';
    IF v_count < v_limit THEN
        RETURN;
    END IF;
    SELECT f.failed_at INTO v_frees_at FROM hearth_data.pairing_failures f
     WHERE f.client_key = p_client_key AND f.failed_at > p_now - interval '10 minutes'
     ORDER BY f.failed_at
    OFFSET v_count - v_limit LIMIT 1;
    v_retry := greatest(1, ceil(extract(epoch FROM v_frees_at + interval '10 minutes' - p_now)))::integer;
    RAISE EXCEPTION 'too many failed codes; try again in % s', v_retry
        USING ERRCODE = 'HT429', DETAIL = v_retry::text;
END
$$;

COMMENT ON FUNCTION hearth_data.check_code_attempts(text, timestamptz) IS
    'HT429 (DETAIL: seconds to wait) when a client key has pairing_max_failures failures in 10 minutes.';
REVOKE ALL ON FUNCTION hearth_data.check_code_attempts(text, timestamptz) FROM PUBLIC;
