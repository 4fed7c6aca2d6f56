-- set_setting: changes a setting for every instance, job and DBA at once; returns the stored value.
-- Intervals must be positive and at most 365 days; integers positive; booleans are stored as true or false
-- (on/off, yes/no, 1/0 are taken too). HT400 bad value, HT404 unknown key.
-- Changing session_idle_timeout moves the idle deadline of open sessions that follow the default.
CREATE OR REPLACE FUNCTION hearth.set_setting(p_key text, p_value text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text;
    v_interval interval;
    v_integer integer;
    v_boolean boolean;
    v_stored text;
BEGIN
    PERFORM hearth_data.require(p_key IS NOT NULL, 'p_key must not be null');
    PERFORM hearth_data.require(p_value IS NOT NULL, 'p_value must not be null');
    SELECT s.value_type INTO v_type FROM hearth_data.settings s WHERE s.key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting %', p_key USING ERRCODE = 'HT404';
    END IF;
    BEGIN
        IF v_type = 'interval' THEN
            v_interval := p_value::interval;
        ELSIF v_type = 'boolean' THEN
            v_boolean := p_value::boolean;
        ELSE
            v_integer := p_value::integer;
        END IF;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'setting % takes a %, not %', p_key, v_type, quote_literal(p_value) USING ERRCODE = 'HT400';
    END;
    IF v_type = 'interval' THEN
        PERFORM hearth_data.require(v_interval > interval '0' AND v_interval <= interval '365 days',
                                    'interval settings must be positive and at most 365 days');
        v_stored := v_interval::text;
    ELSIF v_type = 'boolean' THEN
        v_stored := v_boolean::text;
    ELSE
        PERFORM hearth_data.require(v_integer > 0, 'integer settings must be positive');
        v_stored := v_integer::text;
    END IF;

    UPDATE hearth_data.settings SET value = v_stored WHERE key = p_key;
    IF p_key = 'session_idle_timeout' THEN
        UPDATE hearth_data.sessions
           SET idle_deadline = last_activity_at + v_interval
         WHERE idle_timeout IS NULL AND status IN ('waiting', 'active');
    END IF;
    RETURN v_stored;
END
$$;

COMMENT ON FUNCTION hearth.set_setting(text, text) IS
    'Sets a setting for all instances and jobs; returns the normalised value. HT400 bad value, HT404 unknown key.';
REVOKE ALL ON FUNCTION hearth.set_setting(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.set_setting(text, text) TO hearth_admin;
