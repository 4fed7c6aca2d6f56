-- identity_seq: the last sequence number of an identity's own event stream (match.found,
-- match.ended), for a websocket's welcome. HT404 if the identity does not exist.
CREATE OR REPLACE FUNCTION hearth.identity_seq(p_identity_id uuid)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_seq bigint;
BEGIN
    PERFORM hearth_data.require(p_identity_id IS NOT NULL, 'p_identity_id must not be null');
    SELECT i.event_seq INTO v_seq FROM hearth_data.identities i WHERE i.identity_id = p_identity_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no identity %', p_identity_id USING ERRCODE = 'HT404';
    END IF;
    RETURN v_seq;
END
$$;

COMMENT ON FUNCTION hearth.identity_seq(uuid) IS 'The last sequence number of an identity''s event stream. HT404 if unknown.';
REVOKE ALL ON FUNCTION hearth.identity_seq(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.identity_seq(uuid) TO hearth_app;
