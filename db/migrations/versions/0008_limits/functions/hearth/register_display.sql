-- register_display: a waiting display: a pairing session (status waiting, two places) whose code is
-- valid for p_ttl (default: the pairing_ttl setting) unless paired, with the display already its
-- participant (role display). The display counts against the identity's max_open_sessions_per_identity
-- while it waits or is paired (create_session's p_created_by). HT400 bad arguments, HT404 no such identity,
-- HT429 past that limit.
CREATE OR REPLACE FUNCTION hearth.register_display(
    p_identity_id uuid,
    p_ttl interval DEFAULT NULL
)
RETURNS TABLE (session_id uuid, code text, participant_id uuid, expires_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_session record;
BEGIN
    PERFORM hearth_data.require(p_identity_id IS NOT NULL, 'p_identity_id must not be null');
    PERFORM hearth_data.require(p_ttl IS NULL OR (p_ttl > interval '0' AND p_ttl <= interval '1 day'),
                                'p_ttl must be positive and at most 1 day');
    IF NOT EXISTS (SELECT FROM hearth_data.identities i WHERE i.identity_id = p_identity_id) THEN
        RAISE EXCEPTION 'no identity %', p_identity_id USING ERRCODE = 'HT404';
    END IF;
    SELECT * INTO v_session
      FROM hearth.create_session('pairing', NULL, 2, NULL,
                                 COALESCE(p_ttl, hearth_data.setting_interval('pairing_ttl')), '{}',
                                 p_identity_id);
    RETURN QUERY
    SELECT v_session.session_id, v_session.code,
           hearth_data.join_participant(v_session.session_id, p_identity_id, 'display', now()),
           v_session.expires_at;
END
$$;

COMMENT ON FUNCTION hearth.register_display(uuid, interval) IS
    'Registers a waiting display: a pairing session with a code valid for pairing_ttl, the display its participant.';
REVOKE ALL ON FUNCTION hearth.register_display(uuid, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.register_display(uuid, interval) TO hearth_app;
