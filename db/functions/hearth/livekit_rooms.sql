-- livekit_rooms: room health. Every LiveKit room Hearth knows (Hearth creates a room per match: the open
-- matches' rooms, and the rooms of ended matches not yet deleted), with what LiveKit's webhooks last said:
--   match_status           connecting, in_call (both sides in the room) or ended
--   created_at             when LiveKit created the room (null until it has)
--   expected_participants  2 while the match is open, 0 once it has ended
--   participants_in_room   sides in the room by the webhooks (joined, not left since)
--   last_webhook_at        when Hearth last received a webhook about the room
--   problem                null when healthy, else the first of:
--     room not created yet            open match, room pending, and its creation failed at least once or
--                                     was asked for more than 30 seconds ago
--     both sides gone / one side gone open match, a side left the room (end_abandoned_matches ends it
--                                     after the grace period)
--     no webhook for 10 minutes       open match, room created, not both sides in it, and no webhook about it
--                                     for 10 minutes (since the room was created, if none ever came)
--     match over but room still open  ended match whose room is not deleted: its deletion failed at least
--                                     once, was given up, or was asked for more than 30 seconds ago
-- A room LiveKit reported finished (room_finished) is not listed. Open matches first, oldest first.
-- Read-only; for DBAs and GET /v1/admin/rooms. HT400 for a p_now that is not a finite time.
CREATE OR REPLACE FUNCTION hearth.livekit_rooms(p_now timestamptz DEFAULT now())
RETURNS TABLE (
    room text, session_id uuid, match_status text, created_at timestamptz, expected_participants integer,
    participants_in_room integer, last_webhook_at timestamptz, problem text
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    RETURN QUERY
    SELECT r.room, r.session_id,
           CASE WHEN r.ended_at IS NOT NULL THEN 'ended' WHEN r.in_room = 2 THEN 'in_call' ELSE 'connecting' END,
           r.room_created_at,
           CASE WHEN r.ended_at IS NULL THEN 2 ELSE 0 END,
           r.in_room, r.last_webhook_at,
           CASE
               WHEN r.ended_at IS NULL AND r.room_state = 'pending'
                    AND (r.create_failures > 0 OR r.match_created_at <= p_now - interval '30 seconds')
                   THEN 'room not created yet'
               WHEN r.ended_at IS NULL AND r.sides_gone = 2 THEN 'both sides gone'
               WHEN r.ended_at IS NULL AND r.sides_gone = 1 THEN 'one side gone'
               WHEN r.ended_at IS NULL AND r.room_state = 'created' AND r.in_room < 2
                    AND COALESCE(r.last_webhook_at, r.room_created_at) <= p_now - interval '10 minutes'
                   THEN 'no webhook for 10 minutes'
               WHEN r.ended_at IS NOT NULL
                    AND (r.delete_failures > 0 OR r.delete_jobs = 0 OR r.ended_at <= p_now - interval '30 seconds')
                   THEN 'match over but room still open'
           END
      FROM (SELECT m.room, m.session_id, m.room_state, m.room_created_at, m.ended_at,
                   m.created_at AS match_created_at,
                   (m.a_joined_at IS NOT NULL AND m.a_left_at IS NULL)::integer
                   + (m.b_joined_at IS NOT NULL AND m.b_left_at IS NULL)::integer AS in_room,
                   (m.a_left_at IS NOT NULL)::integer + (m.b_left_at IS NOT NULL)::integer AS sides_gone,
                   w.last_webhook_at,
                   COALESCE(j.create_failures, 0) AS create_failures,
                   COALESCE(j.delete_failures, 0) AS delete_failures,
                   COALESCE(j.delete_jobs, 0) AS delete_jobs
              FROM hearth_data.matches m
              LEFT JOIN LATERAL (
                   SELECT max(le.received_at) AS last_webhook_at,
                          bool_or(le.event = 'room_finished') AS finished
                     FROM hearth_data.livekit_events le WHERE le.room = m.room) w ON true
              -- The outbox holds only jobs not done yet: one pass over it, not one per room.
              LEFT JOIN (
                   SELECT lj.session_id,
                          sum(lj.attempts) FILTER (WHERE lj.kind = 'create_room') AS create_failures,
                          sum(lj.attempts) FILTER (WHERE lj.kind = 'delete_room') AS delete_failures,
                          count(*) FILTER (WHERE lj.kind = 'delete_room') AS delete_jobs
                     FROM hearth_data.livekit_jobs lj GROUP BY lj.session_id) j ON j.session_id = m.session_id
             WHERE (m.ended_at IS NULL OR m.room_state = 'created')
               AND m.room_state IN ('pending', 'created')
               AND NOT COALESCE(w.finished, false)) r
     ORDER BY r.ended_at IS NOT NULL, r.match_created_at, r.room;
END
$$;

COMMENT ON FUNCTION hearth.livekit_rooms(timestamptz) IS
    'Room health: every LiveKit room Hearth knows (its matches'') with the match, expected and observed '
    'participants (from webhooks), the last webhook time and a problem for unhealthy ones (room not created '
    'yet, one side gone, no webhook for 10 minutes, match over but room still open). Read-only.';
REVOKE ALL ON FUNCTION hearth.livekit_rooms(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.livekit_rooms(timestamptz) TO hearth_app;
