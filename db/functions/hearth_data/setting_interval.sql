-- setting_interval: a settings value of type interval. Raises HT404 for an unknown key.
CREATE OR REPLACE FUNCTION hearth_data.setting_interval(p_key text)
RETURNS interval
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text;
BEGIN
    SELECT s.value INTO v_value FROM hearth_data.settings s WHERE s.key = p_key AND s.value_type = 'interval';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown interval setting %', p_key USING ERRCODE = 'HT404';
    END IF;
    RETURN v_value::interval;
END
$$;

COMMENT ON FUNCTION hearth_data.setting_interval(text) IS 'The value of an interval setting (HT404 if unknown).';
REVOKE ALL ON FUNCTION hearth_data.setting_interval(text) FROM PUBLIC;
