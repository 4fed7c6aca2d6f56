-- join_by_code: an identity joins the open session that has this code (a room's, or a match's for its
-- two identities), as POST /v1/join does; returns (session_id, participant_id). A display's code is not
-- found here: only pair_controller seats a controller. A room's code is a secret too, so attempts share
-- pair_controller's limit: HT429 when p_client_key has pairing_max_failures failures in the last 10
-- minutes. A raised HT400/HT404/HT410 rolls back this function's writes, so the caller counts the failure
-- in its own transaction (record_pairing_failure), one client key's attempts serialized across every
-- instance (the app holds an advisory lock on the key around both); a DBA's direct call is not counted.
-- HT400 malformed code, HT404 no open session with it, HT409 full, HT410 expired, HT403 (see join_session).
CREATE OR REPLACE FUNCTION hearth.join_by_code(
    p_code text,
    p_identity_id uuid,
    p_client_key text DEFAULT NULL,
    p_now timestamptz DEFAULT now()
)
RETURNS TABLE (session_id uuid, participant_id uuid)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_code text := upper(btrim(p_code));
    v_session_id uuid;
BEGIN
    PERFORM hearth_data.require(p_identity_id IS NOT NULL, 'p_identity_id must not be null');
    PERFORM hearth_data.require(p_client_key IS NULL OR length(p_client_key) <= 200,
                                'p_client_key must be at most 200 characters');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    PERFORM hearth_data.check_code_attempts(p_client_key, p_now);
    PERFORM hearth_data.require(v_code ~ '^[2-9A-HJKMNP-Z]{6}$',
                                'a code is 6 characters from 2-9 and A-Z without I, L and O');
    SELECT s.session_id INTO v_session_id FROM hearth_data.sessions s
     WHERE s.code = v_code AND s.status IN ('waiting', 'active') AND s.kind <> 'pairing';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no open session with code %', v_code USING ERRCODE = 'HT404';
    END IF;
    RETURN QUERY SELECT v_session_id, hearth_data.join_participant(v_session_id, p_identity_id, 'member', p_now);
END
$$;

COMMENT ON FUNCTION hearth.join_by_code(text, uuid, text, timestamptz) IS
    'Joins the open session with a code (not a display''s); HT404 unknown, HT429 past the per-client limit. '
    'The app counts failures (record_pairing_failure); direct DBA calls are not counted.';
REVOKE ALL ON FUNCTION hearth.join_by_code(text, uuid, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.join_by_code(text, uuid, text, timestamptz) TO hearth_app;
