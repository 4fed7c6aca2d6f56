-- cleanup_inactive_identities: deletes anonymous identities inactive for p_max_idle (default: the
-- identity_idle_timeout setting) with all they own: they first leave the sessions they are still in
-- (presence.leave, reason inactive), then their messages, participants and identity events go.
-- Activity is the identity's own API use, a heartbeat, or a participation that ended after the cutoff.
-- Identities whose rows someone else holds are left for the next run. Returns the number deleted.
-- Session history stays complete: their participations (with the display name) are copied to
-- archive_pending_participants, and while archive_messages is on their messages to
-- archive_pending_messages, where the archive of each session finds them (cleanup_sessions_batch). So an
-- archive keeps the names, times and (when asked) messages of anonymous identities until archive_retention.
-- pg_cron: every 15 minutes. HT400 for a p_max_idle not positive or over 100 years.
CREATE OR REPLACE FUNCTION hearth.cleanup_inactive_identities(
    p_max_idle interval DEFAULT NULL,
    p_now timestamptz DEFAULT now()
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz;
    v_ids uuid[];
    v_sessions uuid[];
    v_locked uuid[];
    v_participant_id uuid;
    v_messages boolean;
BEGIN
    PERFORM hearth_data.require(p_max_idle IS NULL OR (p_max_idle > interval '0' AND p_max_idle <= interval '100 years'),
                                'p_max_idle must be positive and at most 100 years');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    v_cutoff := p_now - COALESCE(p_max_idle, hearth_data.setting_interval('identity_idle_timeout'));

    v_ids := ARRAY(
        SELECT i.identity_id FROM hearth_data.identities i
         WHERE i.external_id IS NULL AND i.last_active_at < v_cutoff
           AND NOT EXISTS (
               SELECT FROM hearth_data.participants pa
                 LEFT JOIN hearth_data.presence pr ON pr.participant_id = pa.participant_id
                WHERE pa.identity_id = i.identity_id
                  AND (pa.left_at >= v_cutoff OR pr.last_seen_at >= v_cutoff))
         ORDER BY i.identity_id
           FOR UPDATE OF i SKIP LOCKED);
    -- Those rows are ours now: no join can add a participant for them (its foreign key check waits). But
    -- a join that committed after the query above took its snapshot was not seen: look again.
    v_ids := ARRAY(
        SELECT i.identity_id FROM hearth_data.identities i
         WHERE i.identity_id = ANY (v_ids) AND i.last_active_at < v_cutoff
           AND NOT EXISTS (
               SELECT FROM hearth_data.participants pa
                 LEFT JOIN hearth_data.presence pr ON pr.participant_id = pa.participant_id
                WHERE pa.identity_id = i.identity_id
                  AND (pa.left_at >= v_cutoff OR pr.last_seen_at >= v_cutoff))
         ORDER BY i.identity_id);
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;

    -- The sessions they are still present in; an identity whose session is busy waits for the next run.
    v_sessions := ARRAY(SELECT DISTINCT pr.session_id FROM hearth_data.presence pr
                          JOIN hearth_data.participants pa USING (participant_id)
                         WHERE pa.identity_id = ANY (v_ids));
    v_locked := ARRAY(SELECT s.session_id FROM hearth_data.sessions s WHERE s.session_id = ANY (v_sessions)
                       ORDER BY s.session_id FOR UPDATE SKIP LOCKED);
    IF cardinality(v_locked) < cardinality(v_sessions) THEN
        v_ids := ARRAY(
            SELECT id FROM unnest(v_ids) AS id
             WHERE NOT EXISTS (SELECT FROM hearth_data.presence pr
                                 JOIN hearth_data.participants pa USING (participant_id)
                                WHERE pa.identity_id = id AND NOT pr.session_id = ANY (v_locked)));
    END IF;

    FOR v_participant_id IN
        SELECT pr.participant_id FROM hearth_data.presence pr
          JOIN hearth_data.participants pa USING (participant_id)
         WHERE pa.identity_id = ANY (v_ids)
         ORDER BY pr.participant_id
           FOR UPDATE OF pr
    LOOP
        PERFORM hearth_data.remove_participant(v_participant_id, 'inactive', p_now);
    END LOOP;

    INSERT INTO hearth_data.archive_pending_participants
           (participant_id, session_id, identity_id, display_name, role, joined_at, left_at, leave_reason)
    SELECT pa.participant_id, pa.session_id, pa.identity_id, i.display_name, pa.role, pa.joined_at, pa.left_at,
           pa.leave_reason
      FROM hearth_data.participants pa JOIN hearth_data.identities i ON i.identity_id = pa.identity_id
     WHERE pa.identity_id = ANY (v_ids)
    ON CONFLICT (participant_id) DO NOTHING;
    v_messages := hearth_data.setting_boolean('archive_messages');
    WITH gone AS (
        DELETE FROM hearth_data.events e
         USING hearth_data.participants pa
         WHERE pa.identity_id = ANY (v_ids)
           AND e.stream_id = pa.session_id
           AND e.type = 'message'
           AND e.payload ->> 'participant_id' = pa.participant_id::text
        RETURNING e.stream_id, e.seq, e.type, e.payload, e.created_at
    )
    INSERT INTO hearth_data.archive_pending_messages (session_id, seq, type, payload, created_at)
    SELECT g.stream_id, g.seq, g.type, g.payload, g.created_at FROM gone g WHERE v_messages
    ON CONFLICT DO NOTHING;
    DELETE FROM hearth_data.events WHERE stream_id = ANY (v_ids);
    DELETE FROM hearth_data.participants WHERE identity_id = ANY (v_ids);
    DELETE FROM hearth_data.identities WHERE identity_id = ANY (v_ids);
    RETURN cardinality(v_ids);
END
$$;

COMMENT ON FUNCTION hearth.cleanup_inactive_identities(interval, timestamptz) IS
    'Deletes anonymous identities inactive for identity_idle_timeout, after they leave their sessions (reason '
    'inactive), with their participants and messages; returns the count. pg_cron: every 15 minutes.';
REVOKE ALL ON FUNCTION hearth.cleanup_inactive_identities(interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.cleanup_inactive_identities(interval, timestamptz) TO hearth_app;
