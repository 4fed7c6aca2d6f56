-- session_history: the archive of a session that cleanup_inactive_sessions deleted: its kind and name,
-- when it started and ended and why, who took part (participants: [{participant_id, identity_id,
-- display_name, role, joined_at, left_at, leave_reason}], by join time; anonymous identities deleted since
-- keep their entries), how many messages (message and app.* events) and events it had, and its messages
-- ([{type, seq, at, ...payload}] as clients saw them, by seq) when archive_messages was on at the time, else
-- NULL. HT400 null id, HT404 when the session was never archived or its archive is older than
-- archive_retention (prune_events deletes those).
CREATE OR REPLACE FUNCTION hearth.session_history(p_session_id uuid)
RETURNS TABLE (
    session_id uuid, kind text, name text, created_at timestamptz, ended_at timestamptz, end_reason text,
    participants jsonb, message_count bigint, event_count bigint, messages jsonb
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM hearth_data.require(p_session_id IS NOT NULL, 'p_session_id must not be null');
    RETURN QUERY
    SELECT a.session_id, a.kind, a.name, a.created_at, a.ended_at, a.end_reason,
           (SELECT COALESCE(jsonb_agg(to_jsonb(p) ORDER BY p.joined_at, p.participant_id), '[]')
              FROM unnest(a.participants) p),
           a.message_count, a.event_count,
           CASE WHEN a.messages IS NOT NULL THEN
               (SELECT COALESCE(jsonb_agg(m.payload || jsonb_build_object('type', m.type, 'seq', m.seq, 'at', m.created_at)
                                          ORDER BY m.seq), '[]')
                  FROM unnest(a.messages) m)
           END
      FROM hearth_data.session_archive a
     WHERE a.session_id = p_session_id
       AND a.ended_at >= now() - hearth_data.setting_interval('archive_retention');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no archive of session %', p_session_id USING ERRCODE = 'HT404';
    END IF;
END
$$;

COMMENT ON FUNCTION hearth.session_history(uuid) IS
    'The archive of a deleted session: times, end reason, participants (names and times), message and event '
    'counts, and its messages when archive_messages was on. HT404 if never archived or past archive_retention.';
REVOKE ALL ON FUNCTION hearth.session_history(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.session_history(uuid) TO hearth_app;
