-- prune_events: deletes events older than p_keep (default: the event_retention setting), 10,000 rows
-- at a time; returns how many. Age is emitted_at, which rises with seq in every stream, so a prune only
-- ever cuts a stream's oldest events, never one in the middle. Stream sequence counters live on the
-- stream rows, so pruning never makes a sequence number be reused. pg_cron: every 15 minutes. HT400 for a p_keep not
-- positive or over 100 years.
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
    v_deleted integer;
    v_total integer := 0;
BEGIN
    PERFORM hearth_data.require(p_keep IS NULL OR (p_keep > interval '0' AND p_keep <= interval '100 years'),
                                'p_keep must be positive and at most 100 years');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    v_cutoff := p_now - COALESCE(p_keep, hearth_data.setting_interval('event_retention'));
    LOOP
        DELETE FROM hearth_data.events e
         WHERE e.ctid = ANY (ARRAY(SELECT e2.ctid FROM hearth_data.events e2
                                    WHERE e2.emitted_at < v_cutoff LIMIT 10000));
        GET DIAGNOSTICS v_deleted = ROW_COUNT;
        v_total := v_total + v_deleted;
        EXIT WHEN v_deleted < 10000;
    END LOOP;
    RETURN v_total;
END
$$;

COMMENT ON FUNCTION hearth.prune_events(interval, timestamptz) IS
    'Deletes events older than event_retention; returns how many. pg_cron: every 15 minutes.';
REVOKE ALL ON FUNCTION hearth.prune_events(interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.prune_events(interval, timestamptz) TO hearth_app;
