-- session_by_code: the open session with this code. Codes are matched case-insensitively, ignoring
-- surrounding blanks. A waiting display's code is not found here (only pair_controller takes it).
-- HT400 for a malformed code (not 6 symbols of the code alphabet), HT404 when no open session has it.
CREATE OR REPLACE FUNCTION hearth.session_by_code(p_code text)
RETURNS uuid
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_code text := upper(btrim(p_code));
    v_session_id uuid;
BEGIN
    PERFORM hearth_data.require(v_code ~ '^[2-9A-HJKMNP-Z]{6}$',
                                'a code is 6 characters from 2-9 and A-Z without I, L and O');
    SELECT s.session_id INTO v_session_id FROM hearth_data.sessions s
     WHERE s.code = v_code AND s.status IN ('waiting', 'active') AND s.kind <> 'pairing';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no open session with code %', v_code USING ERRCODE = 'HT404';
    END IF;
    RETURN v_session_id;
END
$$;

COMMENT ON FUNCTION hearth.session_by_code(text) IS
    'The open session with a code (case-insensitive). HT400 malformed, HT404 none.';
REVOKE ALL ON FUNCTION hearth.session_by_code(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.session_by_code(text) TO hearth_app;
