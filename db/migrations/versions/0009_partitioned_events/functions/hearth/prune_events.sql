-- prune_events: removes the events older than p_keep (default: the event_retention setting) before p_now,
-- a whole partition at a time; returns how many events it removed. The events table is partitioned by
-- emitted_at (create_event_partitions): a partition goes once its upper bound is at most p_now - p_keep
-- (and at most now: the partition being written and those made ahead are never dropped), so an event is
-- kept between p_keep and p_keep plus one event_partition_interval (15 minutes), and a run drops about one
-- partition. The default partition (events no partition covered) is pruned by DELETE, 10,000 rows at a
-- time, below the same line: p_now - p_keep, or the lower bound of the oldest partition kept if that is
-- earlier. Everything removed is therefore older than one time, and emitted_at rises with seq in every
-- stream: a prune only ever cuts a stream's oldest events, never one in the middle (resume_streams relies
-- on it). Stream sequence counters live on the stream rows, so pruning never makes a sequence number be
-- reused. The count: rows deleted from the default partition plus the rows of each dropped partition,
-- counted (a read, no write) before it is dropped.
-- Locks: a partition to drop is first locked in SHARE mode (it waits for a writer still in it; writers
-- are in the newest partition) and counted, and its messages copied (below), while writers go on; then
-- the events table is locked (ACCESS EXCLUSIVE, ONLY the table, then each partition dropped: the order
-- writers take them) for the catalog changes, until commit. DROP, not DETACH ... CONCURRENTLY, which
-- cannot run in a function's transaction: each lock waits at most lock_timeout (200 ms) behind readers,
-- and post_message waits at most that long behind the drop; a lock not taken in time fails the run
-- (55P03, nothing removed: it is all one transaction) and the next run retries.
-- Session history: while archive_messages is on, the messages (message and app.* events) of a session not
-- yet archived are copied to archive_pending_messages before their partition is dropped (or in the
-- statement that deletes them from the default partition), where the archive finds them
-- (cleanup_sessions_batch): "copy first, then drop". It also deletes archives whose session ended more
-- than archive_retention before p_now, and pending rows left behind by a session that is gone (a copy
-- racing the session's own cleanup). pg_cron: every 15 minutes. HT400 for a p_keep not positive or over
-- 100 years.
CREATE OR REPLACE FUNCTION hearth.prune_events(
    p_keep interval DEFAULT NULL,
    p_now timestamptz DEFAULT now()
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '200ms'
AS $$
DECLARE
    v_cutoff timestamptz;
    v_line timestamptz;
    v_messages boolean;
    v_deleted integer;
    v_rows bigint;
    v_total integer := 0;
    v_drop regclass[] := '{}';
    v_partition regclass;
BEGIN
    PERFORM hearth_data.require(p_keep IS NULL OR (p_keep > interval '0' AND p_keep <= interval '100 years'),
                                'p_keep must be positive and at most 100 years');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    v_cutoff := p_now - COALESCE(p_keep, hearth_data.setting_interval('event_retention'));
    v_messages := hearth_data.setting_boolean('archive_messages');

    DELETE FROM hearth_data.session_archive a
     WHERE a.ended_at < p_now - hearth_data.setting_interval('archive_retention');
    DELETE FROM hearth_data.archive_pending_messages am
     WHERE NOT EXISTS (SELECT FROM hearth_data.sessions s WHERE s.session_id = am.session_id);
    DELETE FROM hearth_data.archive_pending_participants ap
     WHERE NOT EXISTS (SELECT FROM hearth_data.sessions s WHERE s.session_id = ap.session_id);

    -- The partitions to drop: the oldest ones, up to the first one kept.
    SELECT COALESCE(array_agg(p.partition ORDER BY p.lower), '{}') INTO v_drop
      FROM hearth_data.event_partitions() p
     WHERE p.upper <= LEAST(v_cutoff, clock_timestamp());
    SELECT LEAST(v_cutoff, min(p.lower)) INTO v_line
      FROM hearth_data.event_partitions() p
     WHERE p.partition <> ALL (v_drop);
    v_line := COALESCE(v_line, v_cutoff);

    LOOP
        WITH gone AS (
            DELETE FROM hearth_data.events_default e
             WHERE e.ctid = ANY (ARRAY(SELECT e2.ctid FROM hearth_data.events_default e2
                                        WHERE e2.emitted_at < v_line LIMIT 10000))
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

    FOREACH v_partition IN ARRAY v_drop LOOP
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', v_partition);
        EXECUTE format('SELECT count(*) FROM %s', v_partition) INTO v_rows;
        v_total := v_total + v_rows;
        IF v_messages THEN
            EXECUTE format(
                'INSERT INTO hearth_data.archive_pending_messages (session_id, seq, type, payload, created_at) '
                'SELECT e.stream_id, e.seq, e.type, e.payload, e.created_at FROM %s e '
                ' WHERE e.scope = ''session'' AND (e.type = ''message'' OR e.type LIKE ''app.%%'') '
                '   AND EXISTS (SELECT FROM hearth_data.sessions s WHERE s.session_id = e.stream_id) '
                'ON CONFLICT DO NOTHING', v_partition);
        END IF;
    END LOOP;
    IF cardinality(v_drop) > 0 THEN
        LOCK TABLE ONLY hearth_data.events IN ACCESS EXCLUSIVE MODE;
        FOREACH v_partition IN ARRAY v_drop LOOP
            EXECUTE format('DROP TABLE %s', v_partition);
        END LOOP;
    END IF;
    RETURN v_total;
END
$$;

COMMENT ON FUNCTION hearth.prune_events(interval, timestamptz) IS
    'Drops the events table''s partitions wholly older than event_retention (an event is kept up to one '
    'event_partition_interval longer), deletes older rows of its default partition, keeping, while '
    'archive_messages is on, the messages the session archive still needs; deletes archives older than '
    'archive_retention. Returns how many events went. pg_cron: every 15 minutes.';
REVOKE ALL ON FUNCTION hearth.prune_events(interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.prune_events(interval, timestamptz) TO hearth_app;
