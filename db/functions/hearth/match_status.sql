-- match_status: an identity's matchmaking state and, while it is in a match, the match session and
-- the peer: {state, session_id, peer}. HT404 if the identity does not exist.
CREATE OR REPLACE FUNCTION hearth.match_status(p_identity_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_identity hearth_data.identities%ROWTYPE;
    v_peer uuid;
BEGIN
    PERFORM hearth_data.require(p_identity_id IS NOT NULL, 'p_identity_id must not be null');
    SELECT * INTO v_identity FROM hearth_data.identities i WHERE i.identity_id = p_identity_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no identity %', p_identity_id USING ERRCODE = 'HT404';
    END IF;
    IF v_identity.match_session_id IS NULL THEN
        RETURN jsonb_build_object('state', v_identity.match_state);
    END IF;
    SELECT CASE WHEN m.identity_a = p_identity_id THEN m.identity_b ELSE m.identity_a END INTO v_peer
      FROM hearth_data.matches m WHERE m.session_id = v_identity.match_session_id;
    RETURN jsonb_build_object('state', v_identity.match_state, 'session_id', v_identity.match_session_id,
                              'peer', v_peer);
END
$$;

COMMENT ON FUNCTION hearth.match_status(uuid) IS 'An identity''s matchmaking state, with its match session and peer while matched.';
REVOKE ALL ON FUNCTION hearth.match_status(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.match_status(uuid) TO hearth_app;
