-- session_state: one consistent snapshot of a session for clients: id, kind, status, code, whether it
-- is expired at p_now (over, or due), the stream's last sequence number, and its present participants
-- (participant_id, identity_id, role, display_name, joined_at), oldest first. HT404 if unknown.
CREATE OR REPLACE FUNCTION hearth.session_state(
    p_session_id uuid,
    p_now timestamptz DEFAULT now()
)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state jsonb;
BEGIN
    PERFORM hearth_data.require(p_session_id IS NOT NULL, 'p_session_id must not be null');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    SELECT jsonb_build_object(
               'session_id', s.session_id,
               'kind', s.kind,
               'name', s.name,
               'status', s.status,
               'code', s.code,
               'expired', s.status NOT IN ('waiting', 'active') OR s.due_at <= p_now,
               'expires_at', s.expires_at,
               'metadata', s.metadata,
               'seq', s.event_seq,
               'participants', COALESCE((
                   SELECT jsonb_agg(jsonb_build_object(
                              'participant_id', pa.participant_id,
                              'identity_id', pa.identity_id,
                              'role', pa.role,
                              'display_name', i.display_name,
                              'joined_at', pa.joined_at) ORDER BY pa.joined_at, pa.participant_id)
                     FROM hearth_data.participants pa
                     JOIN hearth_data.identities i USING (identity_id)
                    WHERE pa.session_id = s.session_id AND pa.left_at IS NULL), '[]'::jsonb))
      INTO v_state
      FROM hearth_data.sessions s
     WHERE s.session_id = p_session_id;
    IF v_state IS NULL THEN
        RAISE EXCEPTION 'no session %', p_session_id USING ERRCODE = 'HT404';
    END IF;
    RETURN v_state;
END
$$;

COMMENT ON FUNCTION hearth.session_state(uuid, timestamptz) IS
    'A consistent snapshot of a session: kind, status, code, expired, last seq, present participants. HT404 if unknown.';
REVOKE ALL ON FUNCTION hearth.session_state(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.session_state(uuid, timestamptz) TO hearth_app;
