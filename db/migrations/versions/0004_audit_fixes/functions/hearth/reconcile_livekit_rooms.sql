-- reconcile_livekit_rooms: compares the match rooms LiveKit listed at p_listed_at (names starting with
-- 'hearth-match-'; other rooms are not the reconciler's business) with Hearth's matches. Returns the rooms to delete:
-- those Hearth does not know or whose match has ended. Open matches whose room was created more than
-- p_margin before the listing but is missing from it are ended (action vanished: both wait again).
CREATE OR REPLACE FUNCTION hearth.reconcile_livekit_rooms(
    p_rooms text[],
    p_listed_at timestamptz DEFAULT now(),
    p_margin interval DEFAULT '5 seconds'
)
RETURNS TABLE (room text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_sessions uuid[];
    v_session_id uuid;
BEGIN
    PERFORM hearth_data.require(p_rooms IS NOT NULL, 'p_rooms must not be null');
    PERFORM hearth_data.require(isfinite(p_listed_at), 'p_listed_at must be a finite time');
    PERFORM hearth_data.require(p_margin >= interval '0' AND p_margin <= interval '1 day',
                                'p_margin must be between 0 and a day');
    -- db/schema.sql's lock order: sessions (SKIP LOCKED), their presence in participant order, matches.
    v_sessions := ARRAY(
        SELECT s.session_id FROM hearth_data.sessions s
         WHERE s.session_id IN (
               SELECT m.session_id FROM hearth_data.matches m
                WHERE m.ended_at IS NULL AND m.room_state = 'created'
                  AND m.room_created_at < p_listed_at - p_margin
                  AND NOT m.room = ANY (p_rooms))
         ORDER BY s.session_id
           FOR UPDATE SKIP LOCKED);
    PERFORM FROM hearth_data.presence pr WHERE pr.session_id = ANY (v_sessions) ORDER BY pr.participant_id FOR UPDATE;
    FOR v_session_id IN
        SELECT m.session_id FROM hearth_data.matches m
         WHERE m.session_id = ANY (v_sessions) AND m.ended_at IS NULL AND m.room_state = 'created'
           AND m.room_created_at < p_listed_at - p_margin
           AND NOT m.room = ANY (p_rooms)
         ORDER BY m.session_id
           FOR UPDATE
    LOOP
        PERFORM hearth_data.finish_match(v_session_id, NULL, 'vanished', now());
    END LOOP;
    RETURN QUERY
    SELECT r FROM unnest(p_rooms) AS r
     WHERE r LIKE 'hearth-match-%'
       AND NOT EXISTS (SELECT FROM hearth_data.matches m WHERE m.room = r AND m.ended_at IS NULL);
END
$$;

COMMENT ON FUNCTION hearth.reconcile_livekit_rooms(text[], timestamptz, interval) IS
    'Given LiveKit''s room list: returns Hearth rooms to delete (unknown or ended) and ends matches whose room vanished.';
REVOKE ALL ON FUNCTION hearth.reconcile_livekit_rooms(text[], timestamptz, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.reconcile_livekit_rooms(text[], timestamptz, interval) TO hearth_app;
