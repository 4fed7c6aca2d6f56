-- cleanup_sessions_batch: deletes up to p_batch sessions that are ended, expired, or inactive (open and
-- idle for p_max_idle, or when that is null, due by their own idle timeout or TTL), with their
-- participants, presence and events. Open ones get session.expired first (that event's row stays until
-- prune_events: the relay delivers it from the table). Returns how many it deleted.
-- Before anything goes, each session gets its archive row (hearth.session_history), in the same
-- transaction: who took part, when it started and ended and why, its message and event counts (kept on the
-- session row as events happened), and, when archive_messages is on, its messages. The rows the live tables
-- lost meanwhile are in the archive_pending_* tables (see cleanup_inactive_identities and prune_events):
-- one statement reads them with the live rows, so under one snapshot a row moved there concurrently is seen
-- in exactly one of the two places (a DELETE ... RETURNING here would miss a row such a job deleted first).
-- One batch is one unit of locking: hearth.cleanup_inactive_sessions loops it in one transaction,
-- hearth_data.run_cleanup_inactive_sessions (the pg_cron job) commits after each.
CREATE OR REPLACE FUNCTION hearth_data.cleanup_sessions_batch(
    p_max_idle interval,
    p_batch integer,
    p_now timestamptz
)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_closed uuid[];
    v_open uuid[];
    v_all uuid[];
    v_session record;
    v_messages boolean;
BEGIN
    v_closed := ARRAY(
        SELECT s.session_id FROM hearth_data.sessions s
         WHERE s.status IN ('expired', 'ended')
         ORDER BY s.closed_at  -- walk sessions_closed_idx: stale statistics must not make this a seq scan
         LIMIT p_batch
           FOR UPDATE SKIP LOCKED);
    IF cardinality(v_closed) < p_batch THEN
        IF p_max_idle IS NULL THEN
            v_open := ARRAY(
                SELECT s.session_id FROM hearth_data.sessions s
                 WHERE s.status IN ('waiting', 'active') AND s.due_at <= p_now
                 ORDER BY s.due_at  -- sessions_open_due_idx, likewise
                 LIMIT p_batch - cardinality(v_closed)
                   FOR UPDATE SKIP LOCKED);
        ELSE
            v_open := ARRAY(
                SELECT s.session_id FROM hearth_data.sessions s
                 WHERE s.status IN ('waiting', 'active') AND s.last_activity_at <= p_now - p_max_idle
                 ORDER BY s.last_activity_at  -- sessions_open_last_activity_idx, likewise
                 LIMIT p_batch - cardinality(v_closed)
                   FOR UPDATE SKIP LOCKED);
        END IF;
    ELSE
        v_open := '{}';
    END IF;
    v_all := v_closed || v_open;
    IF cardinality(v_all) = 0 THEN
        RETURN 0;
    END IF;
    v_messages := hearth_data.setting_boolean('archive_messages');

    -- Presence rows in participant order, the order touch() locks in.
    PERFORM FROM hearth_data.presence pr WHERE pr.session_id = ANY (v_open) ORDER BY pr.participant_id FOR UPDATE;
    DELETE FROM hearth_data.presence WHERE session_id = ANY (v_open);
    FOR v_session IN
        SELECT s.session_id, s.kind, s.status, s.expires_at FROM hearth_data.sessions s
         WHERE s.session_id = ANY (v_open)
         ORDER BY s.session_id
    LOOP
        PERFORM hearth_data.close_session(v_session.session_id, 'expired',
            hearth_data.expiry_reason(v_session.kind, v_session.status, v_session.expires_at, p_now), p_now);
    END LOOP;
    -- A closed match session whose match is still open (revision 0003 closed them without it): its two
    -- identities must not be left in a match that the delete below cascades away.
    FOR v_session IN
        SELECT m.session_id FROM hearth_data.matches m
         WHERE m.session_id = ANY (v_closed) AND m.ended_at IS NULL ORDER BY m.session_id
    LOOP
        PERFORM hearth_data.finish_match(v_session.session_id, NULL, 'expired', p_now);
    END LOOP;

    -- Arrays of rows, not JSON: building JSON here cost a batch more than the rest of the archive.
    INSERT INTO hearth_data.session_archive (session_id, kind, name, created_at, ended_at, end_reason, participants,
                                             message_count, event_count, messages, archived_at)
    SELECT s.session_id, s.kind, s.name, s.created_at, COALESCE(s.closed_at, p_now), s.close_reason,
           COALESCE(pa.list, '{}'), s.message_count, s.event_seq, CASE WHEN v_messages THEN COALESCE(m.list, '{}') END,
           p_now
      FROM hearth_data.sessions s
      LEFT JOIN (
           SELECT x.session_id,
                  array_agg(ROW(x.participant_id, x.identity_id, x.display_name, x.role, x.joined_at, x.left_at,
                                x.leave_reason)::hearth_data.archived_participant
                            ORDER BY x.joined_at, x.participant_id) AS list
             -- Those still present were in a session this batch has just closed (at p_now): their
             -- presence goes without a presence.leave, but the archive records them leaving with it.
             FROM (SELECT pt.participant_id, pt.session_id, pt.identity_id, i.display_name, pt.role, pt.joined_at,
                          COALESCE(pt.left_at, p_now) AS left_at, COALESCE(pt.leave_reason, 'expired') AS leave_reason
                     FROM hearth_data.participants pt
                     JOIN hearth_data.identities i ON i.identity_id = pt.identity_id
                    WHERE pt.session_id = ANY (v_all)
                   UNION ALL
                   SELECT ap.participant_id, ap.session_id, ap.identity_id, ap.display_name, ap.role, ap.joined_at,
                          ap.left_at, ap.leave_reason
                     FROM hearth_data.archive_pending_participants ap
                    WHERE ap.session_id = ANY (v_all)) x
            GROUP BY x.session_id) pa ON pa.session_id = s.session_id
      LEFT JOIN (
           SELECT y.session_id,
                  array_agg(ROW(y.seq, y.type, y.created_at, y.payload)::hearth_data.archived_message
                            ORDER BY y.seq) AS list
             FROM (SELECT e.stream_id AS session_id, e.seq, e.type, e.payload, e.created_at
                     FROM hearth_data.events e
                    WHERE v_messages AND e.stream_id = ANY (v_all) AND (e.type = 'message' OR e.type LIKE 'app.%')
                   UNION ALL
                   SELECT am.session_id, am.seq, am.type, am.payload, am.created_at
                     FROM hearth_data.archive_pending_messages am
                    WHERE v_messages AND am.session_id = ANY (v_all)) y
            GROUP BY y.session_id) m ON m.session_id = s.session_id
     WHERE s.session_id = ANY (v_all);

    -- The session.expired just emitted stays: the relay reads what it delivers from this table, after
    -- commit. prune_events removes it with the rest of its age.
    DELETE FROM hearth_data.events e
     WHERE e.stream_id = ANY (v_all) AND NOT (e.stream_id = ANY (v_open) AND e.type = 'session.expired');
    DELETE FROM hearth_data.participants WHERE session_id = ANY (v_all);
    DELETE FROM hearth_data.sessions WHERE session_id = ANY (v_all);
    DELETE FROM hearth_data.archive_pending_participants WHERE session_id = ANY (v_all);
    DELETE FROM hearth_data.archive_pending_messages WHERE session_id = ANY (v_all);
    RETURN cardinality(v_all);
END
$$;

COMMENT ON FUNCTION hearth_data.cleanup_sessions_batch(interval, integer, timestamptz)
    IS 'One batch of cleanup_inactive_sessions: archives, then deletes, up to p_batch closed or inactive sessions.';
REVOKE ALL ON FUNCTION hearth_data.cleanup_sessions_batch(interval, integer, timestamptz) FROM PUBLIC;
