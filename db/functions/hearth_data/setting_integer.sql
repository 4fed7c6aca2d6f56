-- setting_integer: a settings value of type integer. Raises HT404 for an unknown key.
CREATE OR REPLACE FUNCTION hearth_data.setting_integer(p_key text)
RETURNS integer
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text;
BEGIN
    SELECT s.value INTO v_value FROM hearth_data.settings s WHERE s.key = p_key AND s.value_type = 'integer';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown integer setting %', p_key USING ERRCODE = 'HT404';
    END IF;
    RETURN v_value::integer;
END
$$;

COMMENT ON FUNCTION hearth_data.setting_integer(text) IS 'The value of an integer setting (HT404 if unknown).';
REVOKE ALL ON FUNCTION hearth_data.setting_integer(text) FROM PUBLIC;
