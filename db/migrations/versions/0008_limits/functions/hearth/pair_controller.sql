-- pair_controller: a controller enters a display's code. Exactly one controller wins a code: the
-- session row is locked, the winner joins (role controller), the session becomes active and its code
-- stops expiring; session.paired is emitted. Codes are matched case-insensitively.
-- HT400 malformed code (6 symbols from 2-9, A-Z without I, L, O), HT404 unknown code, HT410 expired
-- or ended, HT409 already paired (not a failed guess), HT429 when p_client_key has
-- pairing_max_failures failures in the last 10 minutes. A raised HT400/HT404/HT410 rolls back this
-- function's writes, so the caller counts the failure in its own transaction (record_pairing_failure),
-- one client key's attempts serialized across every instance (the app holds an advisory lock on the key
-- around both). A DBA calling pair_controller directly is not counted.
CREATE OR REPLACE FUNCTION hearth.pair_controller(
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
    v_session hearth_data.sessions%ROWTYPE;
    v_display uuid;
    v_controller uuid;
BEGIN
    PERFORM hearth_data.require(p_identity_id IS NOT NULL, 'p_identity_id must not be null');
    PERFORM hearth_data.require(p_client_key IS NULL OR length(p_client_key) <= 200,
                                'p_client_key must be at most 200 characters');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    PERFORM hearth_data.check_code_attempts(p_client_key, p_now);
    PERFORM hearth_data.require(v_code ~ '^[2-9A-HJKMNP-Z]{6}$',
                                'a code is 6 characters from 2-9 and A-Z, never 0, O, 1, I or L');

    SELECT s.* INTO v_session FROM hearth_data.sessions s
     WHERE s.code = v_code AND s.kind = 'pairing'
     ORDER BY s.created_at DESC
     LIMIT 1
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no display has code %', v_code USING ERRCODE = 'HT404';
    END IF;
    IF v_session.status = 'active' THEN
        RAISE EXCEPTION 'code % is already paired', v_code USING ERRCODE = 'HT409';
    END IF;
    IF v_session.status <> 'waiting' OR v_session.due_at <= p_now THEN
        RAISE EXCEPTION 'code % has expired', v_code USING ERRCODE = 'HT410';
    END IF;

    SELECT pa.participant_id INTO v_display FROM hearth_data.participants pa
     WHERE pa.session_id = v_session.session_id AND pa.role = 'display' AND pa.left_at IS NULL;
    IF v_display IS NULL THEN
        RAISE EXCEPTION 'the display of code % has gone', v_code USING ERRCODE = 'HT410';
    END IF;
    v_controller := hearth_data.join_participant(v_session.session_id, p_identity_id, 'controller', p_now);
    IF v_controller = v_display THEN
        RAISE EXCEPTION 'a display cannot pair with itself' USING ERRCODE = 'HT409';
    END IF;
    UPDATE hearth_data.sessions SET status = 'active', expires_at = NULL
     WHERE session_id = v_session.session_id;
    PERFORM hearth_data.emit_event('session', v_session.session_id, 'session.paired',
        jsonb_build_object('display_participant_id', v_display, 'controller_participant_id', v_controller),
        p_now, true);
    RETURN QUERY SELECT v_session.session_id, v_controller;
END
$$;

COMMENT ON FUNCTION hearth.pair_controller(text, uuid, text, timestamptz) IS
    'Pairs a controller with the display showing a code (one winner); emits session.paired. '
    'HT400 malformed, HT404 unknown, HT410 expired, HT409 already paired, HT429 rate limited. '
    'The app counts failed guesses (record_pairing_failure); direct DBA calls are not counted.';
REVOKE ALL ON FUNCTION hearth.pair_controller(text, uuid, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.pair_controller(text, uuid, text, timestamptz) TO hearth_app;
