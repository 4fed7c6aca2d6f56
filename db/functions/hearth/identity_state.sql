-- identity_state: an identity's matchmaking state: idle, waiting, connecting or in_call.
-- HT404 if the identity does not exist.
CREATE OR REPLACE FUNCTION hearth.identity_state(p_identity_id uuid)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
BEGIN
    PERFORM hearth_data.require(p_identity_id IS NOT NULL, 'p_identity_id must not be null');
    SELECT i.match_state INTO v_state FROM hearth_data.identities i WHERE i.identity_id = p_identity_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no identity %', p_identity_id USING ERRCODE = 'HT404';
    END IF;
    RETURN v_state;
END
$$;

COMMENT ON FUNCTION hearth.identity_state(uuid) IS 'Matchmaking state of an identity: idle, waiting, connecting, in_call.';
REVOKE ALL ON FUNCTION hearth.identity_state(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.identity_state(uuid) TO hearth_app;
