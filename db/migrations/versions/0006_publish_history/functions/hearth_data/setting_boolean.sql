-- setting_boolean: a settings value of type boolean. Raises HT404 for an unknown key.
CREATE OR REPLACE FUNCTION hearth_data.setting_boolean(p_key text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text;
BEGIN
    SELECT s.value INTO v_value FROM hearth_data.settings s WHERE s.key = p_key AND s.value_type = 'boolean';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown boolean setting %', p_key USING ERRCODE = 'HT404';
    END IF;
    RETURN v_value::boolean;
END
$$;

COMMENT ON FUNCTION hearth_data.setting_boolean(text) IS 'The value of a boolean setting (HT404 if unknown).';
REVOKE ALL ON FUNCTION hearth_data.setting_boolean(text) FROM PUBLIC;
