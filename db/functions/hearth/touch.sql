-- touch: batched heartbeat. Refreshes last_seen_at of every listed participant that is present and
-- returns how many were. Emits no event. A session's activity time is written at most about once a
-- minute (every quarter of the idle timeout when that is shorter than four minutes), only while the
-- session is not yet due, and only when no one else holds the session row.
-- Presence rows are locked in participant_id order, so concurrent batches from several instances, and
-- sweeps and expiry, cannot deadlock with it. presence.last_seen_at has no index: these are HOT updates.
-- HT400 for a null array, more than 10,000 ids, or a p_now that is null or not finite.
CREATE OR REPLACE FUNCTION hearth.touch(
    p_participant_ids uuid[],
    p_now timestamptz DEFAULT now()
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
    v_count integer;
BEGIN
    IF p_participant_ids IS NULL OR isfinite(p_now) IS NOT TRUE OR cardinality(p_participant_ids) > 10000 THEN
        PERFORM hearth_data.require(p_participant_ids IS NOT NULL, 'p_participant_ids must not be null');
        PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
        PERFORM hearth_data.require(false, 'at most 10000 participant ids per call');
    END IF;

    -- Presence rows are found through presence_pkey with the id array, and only so (the SET clauses
    -- above rule out sequential and bitmap scans): a forward btree scan sorts the array and visits the
    -- ids in index order, so rows are locked in participant_id order whatever the batch (db/schema.sql's
    -- lock order). A join on the ids would not: its plan decides the order (a hash join visits presence in
    -- heap order). One pass, no separate locking pass: the heartbeat's cost stays near a bare UPDATE's.
    WITH seen AS (
        UPDATE hearth_data.presence p
           SET last_seen_at = p_now
         WHERE p.participant_id = ANY (p_participant_ids)
        RETURNING p.session_id
    ), refreshed AS (
        UPDATE hearth_data.sessions s
           SET last_activity_at = p_now
         WHERE s.session_id IN (
               SELECT s2.session_id FROM hearth_data.sessions s2
                WHERE s2.session_id IN (SELECT DISTINCT seen.session_id FROM seen)
                  AND s2.status IN ('waiting', 'active')
                  AND s2.due_at > p_now  -- a late heartbeat does not bring a due session back
                  AND s2.last_activity_at
                      < p_now - LEAST(interval '1 minute', (s2.idle_deadline - s2.last_activity_at) / 4)
                FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_count FROM seen;
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION hearth.touch(uuid[], timestamptz) IS
    'Batched heartbeat for many participants; returns how many were present. No events; HOT updates.';
REVOKE ALL ON FUNCTION hearth.touch(uuid[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.touch(uuid[], timestamptz) TO hearth_app;
