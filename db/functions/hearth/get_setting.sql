-- get_setting: the current value of a Hearth setting, as text. HT400 for a null key, HT404 if unknown.
CREATE OR REPLACE FUNCTION hearth.get_setting(p_key text)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text;
BEGIN
    PERFORM hearth_data.require(p_key IS NOT NULL, 'p_key must not be null');
    SELECT s.value INTO v_value FROM hearth_data.settings s WHERE s.key = p_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting %', p_key USING ERRCODE = 'HT404';
    END IF;
    RETURN v_value;
END
$$;

COMMENT ON FUNCTION hearth.get_setting(text) IS
    'The value of a setting (session_idle_timeout, presence_timeout, heartbeat_interval, identity_idle_timeout, '
    'pairing_ttl, event_retention, pairing_max_failures, rematch_cooldown, archive_retention, archive_messages). '
    'HT404 if unknown.';
REVOKE ALL ON FUNCTION hearth.get_setting(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.get_setting(text) TO hearth_app;
