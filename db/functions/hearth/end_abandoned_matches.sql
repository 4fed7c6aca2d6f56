-- end_abandoned_matches: a side that left the LiveKit room and has not come back for p_grace ends its
-- match as if it had called end_match(..., 'end'): it goes idle, the other back to waiting, the room is
-- deleted (LiveKit has no "close when one of two is left" setting). Returns how many matches ended.
-- The app runs it every few seconds; pg_cron every minute. HT400 for a non-positive grace.
CREATE OR REPLACE FUNCTION hearth.end_abandoned_matches(
    p_grace interval DEFAULT '20 seconds',
    p_now timestamptz DEFAULT now()
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sessions uuid[];
    v_match record;
    v_count integer := 0;
BEGIN
    PERFORM hearth_data.require(p_grace > interval '0' AND p_grace <= interval '1 day',
                                'p_grace must be positive and at most a day');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    -- db/schema.sql's lock order: the sessions (SKIP LOCKED: what another holds, the next run takes),
    -- then all their presence rows in participant order, then each match.
    v_sessions := ARRAY(
        SELECT s.session_id FROM hearth_data.sessions s
         WHERE s.session_id IN (
               SELECT m.session_id FROM hearth_data.matches m
                WHERE m.ended_at IS NULL
                  AND (m.a_left_at <= p_now - p_grace OR m.b_left_at <= p_now - p_grace))
         ORDER BY s.session_id
           FOR UPDATE SKIP LOCKED);
    IF cardinality(v_sessions) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM FROM hearth_data.presence pr WHERE pr.session_id = ANY (v_sessions) ORDER BY pr.participant_id FOR UPDATE;
    FOR v_match IN
        SELECT m.session_id,
               CASE WHEN m.a_left_at IS NOT NULL AND (m.b_left_at IS NULL OR m.a_left_at <= m.b_left_at)
                    THEN m.identity_a ELSE m.identity_b END AS leaver
          FROM hearth_data.matches m
         WHERE m.session_id = ANY (v_sessions) AND m.ended_at IS NULL
           AND (m.a_left_at <= p_now - p_grace OR m.b_left_at <= p_now - p_grace)
         ORDER BY m.session_id
           FOR UPDATE
    LOOP
        PERFORM hearth_data.finish_match(v_match.session_id, v_match.leaver, 'end', p_now);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION hearth.end_abandoned_matches(interval, timestamptz) IS
    'Ends matches a side left in LiveKit and did not rejoin within p_grace (the leaver goes idle).';
REVOKE ALL ON FUNCTION hearth.end_abandoned_matches(interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.end_abandoned_matches(interval, timestamptz) TO hearth_app;
