-- record_livekit_event: a LiveKit webhook event, recorded once by its id (false for a duplicate), then
-- applied to the match whose room it names (see record_livekit_participant_event, which the app calls
-- with the participant's sid). Without a sid, a participant event older than the newest one known for
-- that identity is ignored. HT400 bad arguments.
CREATE OR REPLACE FUNCTION hearth.record_livekit_event(
    p_event_id text,
    p_event text,
    p_room text,
    p_identity text,
    p_created_at timestamptz
)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT hearth.record_livekit_participant_event(p_event_id, p_event, p_room, p_identity, NULL, p_created_at);
$$;

COMMENT ON FUNCTION hearth.record_livekit_event(text, text, text, text, timestamptz) IS
    'Records a LiveKit webhook event once (false for a duplicate) and applies it to its match.';
REVOKE ALL ON FUNCTION hearth.record_livekit_event(text, text, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.record_livekit_event(text, text, text, text, timestamptz) TO hearth_app;
