-- post_message: a chat message from a present participant to its session (event message); returns the
-- event's seq. The body is a JSON object of at most 32 KiB. HT400 bad body, HT404 no such participant,
-- HT403 the participant has left, HT410 the session is over.
CREATE OR REPLACE FUNCTION hearth.post_message(p_participant_id uuid, p_body jsonb)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session_id uuid;
BEGIN
    PERFORM hearth_data.require(p_participant_id IS NOT NULL, 'p_participant_id must not be null');
    PERFORM hearth_data.require(jsonb_typeof(p_body) = 'object', 'p_body must be a JSON object');
    PERFORM hearth_data.require(octet_length(p_body::text) <= 32768, 'p_body must be at most 32 KiB');
    v_session_id := hearth_data.lock_present_participant(p_participant_id, now());
    RETURN hearth_data.emit_event('session', v_session_id, 'message',
        jsonb_build_object('participant_id', p_participant_id, 'body', p_body), now(), true);
END
$$;

COMMENT ON FUNCTION hearth.post_message(uuid, jsonb) IS
    'Posts a chat message (event message) from a present participant; returns its seq. HT410 if the session is over.';
REVOKE ALL ON FUNCTION hearth.post_message(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.post_message(uuid, jsonb) TO hearth_app;
