-- session_stats: counts at p_now. total_sessions: all rows not yet cleaned up; active_sessions and
-- waiting_sessions: open sessions in that status and not yet due; inactive_sessions: expired, ended, or
-- open but due (idle past their timeout or past their TTL); online_participants: present participants
-- heard from within presence_timeout.
CREATE OR REPLACE FUNCTION hearth.session_stats(p_now timestamptz DEFAULT now())
RETURNS TABLE (
    total_sessions bigint,
    active_sessions bigint,
    waiting_sessions bigint,
    inactive_sessions bigint,
    online_participants bigint
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
    SELECT count(*),
           count(*) FILTER (WHERE s.status = 'active' AND NOT s.due_at <= p_now),
           count(*) FILTER (WHERE s.status = 'waiting' AND NOT s.due_at <= p_now),
           count(*) FILTER (WHERE s.status IN ('expired', 'ended') OR s.due_at <= p_now),
           (SELECT count(*) FROM hearth_data.presence pr
             WHERE pr.last_seen_at >= p_now - hearth_data.setting_interval('presence_timeout'))
      FROM hearth_data.sessions s;
END
$$;

COMMENT ON FUNCTION hearth.session_stats(timestamptz) IS
    'Session and presence counts at p_now: total, active, waiting, inactive (closed or due), online participants.';
REVOKE ALL ON FUNCTION hearth.session_stats(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.session_stats(timestamptz) TO hearth_app;
