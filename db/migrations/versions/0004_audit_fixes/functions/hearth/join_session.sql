-- join_session: an identity joins a session and is present; returns the participant id. Joining again
-- while present returns the same participant (and counts as a heartbeat). A room or match session
-- becomes active at its first join. Emits presence.join. A display's pairing session is not joined
-- here: only pair_controller seats its controller (with a code, and counted as a guess when wrong).
-- HT400 bad arguments, HT404 no such session or identity, HT409 session full, HT410 expired or ended,
-- HT403 a match session joined by anyone but its two identities, or a pairing session.
CREATE OR REPLACE FUNCTION hearth.join_session(
    p_session_id uuid,
    p_identity_id uuid,
    p_role text DEFAULT 'member',
    p_now timestamptz DEFAULT now()
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM hearth_data.sessions s WHERE s.session_id = p_session_id AND s.kind = 'pairing') THEN
        RAISE EXCEPTION 'session % is a display''s: pair with its code', p_session_id USING ERRCODE = 'HT403';
    END IF;
    RETURN hearth_data.join_participant(p_session_id, p_identity_id, p_role, p_now);
END
$$;

COMMENT ON FUNCTION hearth.join_session(uuid, uuid, text, timestamptz) IS
    'Joins an identity to a session (same participant if already present); emits presence.join. '
    'HT404 unknown, HT409 full, HT410 expired or ended, HT403 not one of a match''s two identities or a '
    'display''s pairing session.';
REVOKE ALL ON FUNCTION hearth.join_session(uuid, uuid, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.join_session(uuid, uuid, text, timestamptz) TO hearth_app;
