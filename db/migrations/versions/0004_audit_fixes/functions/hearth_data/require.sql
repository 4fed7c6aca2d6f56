-- require: raises HT400 (invalid argument) with p_message unless p_condition is true. A NULL condition
-- (from a NULL argument) fails too, so callers can write the rule and get null handling for free.
CREATE OR REPLACE FUNCTION hearth_data.require(p_condition boolean, p_message text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_condition IS NOT TRUE THEN
        RAISE EXCEPTION '%', p_message USING ERRCODE = 'HT400';
    END IF;
END
$$;

COMMENT ON FUNCTION hearth_data.require(boolean, text) IS 'Raises HT400 with the message unless the condition is true.';
REVOKE ALL ON FUNCTION hearth_data.require(boolean, text) FROM PUBLIC;
