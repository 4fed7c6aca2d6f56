-- join_participant: an identity joins a session of any kind and is present; returns the participant id.
-- What hearth.join_session does, without its refusal of pairing sessions: register_display seats the
-- display with it, pair_controller the controller (the only ways into a pairing session).
-- Joining again while present returns the same participant (and counts as a heartbeat). A room or match
-- session becomes active at its first join. Emits presence.join.
-- HT400 bad arguments, HT404 no such session or identity, HT409 session full, HT410 expired or ended,
-- HT403 a match session joined by anyone but its two identities.
CREATE OR REPLACE FUNCTION hearth_data.join_participant(
    p_session_id uuid,
    p_identity_id uuid,
    p_role text,
    p_now timestamptz
)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session hearth_data.sessions%ROWTYPE;
    v_display_name text;
    v_participant_id uuid;
    v_present integer;
BEGIN
    PERFORM hearth_data.require(p_session_id IS NOT NULL, 'p_session_id must not be null');
    PERFORM hearth_data.require(p_identity_id IS NOT NULL, 'p_identity_id must not be null');
    PERFORM hearth_data.require(p_role ~ '^[a-z][a-z0-9_]{0,31}$',
                                'p_role must be 1 to 32 lowercase letters, digits or underscores');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');

    SELECT * INTO v_session FROM hearth_data.sessions s WHERE s.session_id = p_session_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no session %', p_session_id USING ERRCODE = 'HT404';
    END IF;
    -- KEY SHARE, as the participant's foreign key would take it, but now: behind a cleanup that is
    -- deleting this identity this waits, then finds it gone (HT404 rather than a raw 23503).
    SELECT i.display_name INTO v_display_name FROM hearth_data.identities i WHERE i.identity_id = p_identity_id
       FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no identity %', p_identity_id USING ERRCODE = 'HT404';
    END IF;
    IF v_session.status NOT IN ('waiting', 'active') OR v_session.due_at <= p_now THEN
        RAISE EXCEPTION 'session % is expired or ended', p_session_id USING ERRCODE = 'HT410';
    END IF;
    -- A match session names its two identities in its metadata (see hearth_data.create_match).
    IF v_session.kind = 'match'
       AND NOT COALESCE(v_session.metadata -> 'identities' ? p_identity_id::text, false) THEN
        RAISE EXCEPTION 'only the two matched identities can join match %', p_session_id USING ERRCODE = 'HT403';
    END IF;

    SELECT pa.participant_id INTO v_participant_id FROM hearth_data.participants pa
     WHERE pa.session_id = p_session_id AND pa.identity_id = p_identity_id AND pa.left_at IS NULL;
    IF FOUND THEN
        UPDATE hearth_data.presence SET last_seen_at = GREATEST(last_seen_at, p_now)
         WHERE participant_id = v_participant_id;
        RETURN v_participant_id;
    END IF;

    IF v_session.max_participants IS NOT NULL THEN
        SELECT count(*) INTO v_present FROM hearth_data.presence pr WHERE pr.session_id = p_session_id;
        IF v_present >= v_session.max_participants THEN
            RAISE EXCEPTION 'session % is full (% participants)', p_session_id, v_session.max_participants
                USING ERRCODE = 'HT409';
        END IF;
    END IF;

    INSERT INTO hearth_data.participants (session_id, identity_id, role, joined_at)
    VALUES (p_session_id, p_identity_id, p_role, p_now)
    RETURNING participant_id INTO v_participant_id;
    INSERT INTO hearth_data.presence (participant_id, session_id, last_seen_at)
    VALUES (v_participant_id, p_session_id, p_now);
    IF v_session.status = 'waiting' AND v_session.kind IN ('room', 'match') THEN
        UPDATE hearth_data.sessions SET status = 'active' WHERE session_id = p_session_id;
    END IF;

    PERFORM hearth_data.emit_event('session', p_session_id, 'presence.join',
        jsonb_build_object('participant_id', v_participant_id, 'identity_id', p_identity_id,
                           'role', p_role, 'display_name', v_display_name),
        p_now, true);
    RETURN v_participant_id;
END
$$;

COMMENT ON FUNCTION hearth_data.join_participant(uuid, uuid, text, timestamptz)
    IS 'Joins an identity to a session of any kind (same participant if already present); emits presence.join.';
REVOKE ALL ON FUNCTION hearth_data.join_participant(uuid, uuid, text, timestamptz) FROM PUBLIC;
