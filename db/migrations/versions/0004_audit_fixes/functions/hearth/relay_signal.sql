-- relay_signal: WebRTC signaling (offer, answer, ice) from one present participant to another of the
-- same session, as a signal event that the relay delivers to p_to only; returns the event's seq.
-- p_data is a JSON object of at most 64 KiB (SDP over the NOTIFY limit travels by reference).
-- HT400 bad kind or data or p_from = p_to, HT404 no such participant or p_to has left,
-- HT403 across sessions or p_from has left, HT410 the session is over.
CREATE OR REPLACE FUNCTION hearth.relay_signal(p_from uuid, p_to uuid, p_kind text, p_data jsonb)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session_id uuid;
    v_to_session_id uuid;
    v_to_left_at timestamptz;
BEGIN
    PERFORM hearth_data.require(p_from IS NOT NULL, 'p_from must not be null');
    PERFORM hearth_data.require(p_to IS NOT NULL, 'p_to must not be null');
    PERFORM hearth_data.require(p_from <> p_to, 'a participant cannot signal itself');
    PERFORM hearth_data.require(p_kind IN ('offer', 'answer', 'ice'), 'p_kind must be offer, answer or ice');
    PERFORM hearth_data.require(jsonb_typeof(p_data) = 'object', 'p_data must be a JSON object');
    PERFORM hearth_data.require(octet_length(p_data::text) <= 65536, 'p_data must be at most 64 KiB');

    SELECT pa.session_id, pa.left_at INTO v_to_session_id, v_to_left_at
      FROM hearth_data.participants pa WHERE pa.participant_id = p_to;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no participant %', p_to USING ERRCODE = 'HT404';
    END IF;
    v_session_id := hearth_data.lock_present_participant(p_from, now());
    IF v_to_session_id <> v_session_id THEN
        RAISE EXCEPTION 'participant % is not in the sender''s session', p_to USING ERRCODE = 'HT403';
    END IF;
    SELECT pa.left_at INTO v_to_left_at FROM hearth_data.participants pa WHERE pa.participant_id = p_to;
    IF v_to_left_at IS NOT NULL THEN
        RAISE EXCEPTION 'participant % has left the session', p_to USING ERRCODE = 'HT404';
    END IF;
    RETURN hearth_data.emit_event('session', v_session_id, 'signal',
        jsonb_build_object('from', p_from, 'to', p_to, 'kind', p_kind, 'data', p_data), now(), true);
END
$$;

COMMENT ON FUNCTION hearth.relay_signal(uuid, uuid, text, jsonb) IS
    'Relays WebRTC signaling (offer, answer, ice) to one participant of the same session; returns its seq. '
    'HT403 across sessions.';
REVOKE ALL ON FUNCTION hearth.relay_signal(uuid, uuid, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.relay_signal(uuid, uuid, text, jsonb) TO hearth_app;
