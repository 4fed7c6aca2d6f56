-- prune_events: deletes events older than p_keep (default: the event_retention setting), 10,000 rows
-- at a time; returns how many. Age is emitted_at, which rises with seq in every stream, so a prune only
-- ever cuts a stream's oldest events, never one in the middle. Stream sequence counters live on the
-- stream rows, so pruning never makes a sequence number be reused. pg_cron: every 15 minutes. HT400 for a p_keep not
-- positive or over 100 years.
-- Session history: while archive_messages is on, the messages (message and app.* events) of a session not
-- yet archived are copied to archive_pending_messages in the statement that deletes them, where the
-- archive finds them (cleanup_sessions_batch): the rule is "copy first, then delete", never "skip streams
-- not yet archived", so it holds unchanged when the events table is partitioned by time and a whole
-- partition is dropped (copy that partition's messages of sessions that still exist, then drop it). It
-- also deletes archives whose session ended more than archive_retention before p_now, and pending rows
-- left behind by a session that is gone (a copy racing the session's own cleanup).
CREATE OR REPLACE FUNCTION hearth.prune_events(
    p_keep interval DEFAULT NULL,
    p_now timestamptz DEFAULT now()
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz;
    v_messages boolean;
    v_deleted integer;
    v_total integer := 0;
BEGIN
    PERFORM hearth_data.require(p_keep IS NULL OR (p_keep > interval '0' AND p_keep <= interval '100 years'),
                                'p_keep must be positive and at most 100 years');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    v_cutoff := p_now - COALESCE(p_keep, hearth_data.setting_interval('event_retention'));
    v_messages := hearth_data.setting_boolean('archive_messages');
    LOOP
        WITH gone AS (
            DELETE FROM hearth_data.events e
             WHERE e.ctid = ANY (ARRAY(SELECT e2.ctid FROM hearth_data.events e2
                                        WHERE e2.emitted_at < v_cutoff LIMIT 10000))
            RETURNING e.stream_id, e.seq, e.scope, e.type, e.payload, e.created_at
        ), kept AS (
            INSERT INTO hearth_data.archive_pending_messages (session_id, seq, type, payload, created_at)
            SELECT g.stream_id, g.seq, g.type, g.payload, g.created_at FROM gone g
             WHERE v_messages AND g.scope = 'session' AND (g.type = 'message' OR g.type LIKE 'app.%')
               AND EXISTS (SELECT FROM hearth_data.sessions s WHERE s.session_id = g.stream_id)
            ON CONFLICT DO NOTHING
        )
        SELECT count(*) INTO v_deleted FROM gone;
        v_total := v_total + v_deleted;
        EXIT WHEN v_deleted < 10000;
    END LOOP;

    DELETE FROM hearth_data.session_archive a
     WHERE a.ended_at < p_now - hearth_data.setting_interval('archive_retention');
    DELETE FROM hearth_data.archive_pending_messages am
     WHERE NOT EXISTS (SELECT FROM hearth_data.sessions s WHERE s.session_id = am.session_id);
    DELETE FROM hearth_data.archive_pending_participants ap
     WHERE NOT EXISTS (SELECT FROM hearth_data.sessions s WHERE s.session_id = ap.session_id);
    RETURN v_total;
END
$$;

COMMENT ON FUNCTION hearth.prune_events(interval, timestamptz) IS
    'Deletes events older than event_retention (keeping, while archive_messages is on, the messages the '
    'session archive still needs) and archives older than archive_retention; returns how many events. '
    'pg_cron: every 15 minutes.';
REVOKE ALL ON FUNCTION hearth.prune_events(interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.prune_events(interval, timestamptz) TO hearth_app;
