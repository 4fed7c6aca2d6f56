-- touch_identities: identities with an open connection (an identity-token websocket: waiting in the
-- match queue, say) are active, so cleanup_inactive_identities leaves them alone. Writes each
-- identity's activity time at most once a minute; returns how many identities exist of those listed.
-- HT400 for a null array, more than 10,000 ids, or a null p_now.
CREATE OR REPLACE FUNCTION hearth.touch_identities(
    p_identity_ids uuid[],
    p_now timestamptz DEFAULT now()
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM hearth_data.require(p_identity_ids IS NOT NULL, 'p_identity_ids must not be null');
    PERFORM hearth_data.require(cardinality(p_identity_ids) <= 10000, 'at most 10000 identity ids per call');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    UPDATE hearth_data.identities i SET last_active_at = p_now
      FROM (SELECT i2.identity_id FROM hearth_data.identities i2
             WHERE i2.identity_id = ANY (p_identity_ids) AND i2.last_active_at < p_now - interval '1 minute'
             ORDER BY i2.identity_id
               FOR UPDATE SKIP LOCKED) AS due
     WHERE i.identity_id = due.identity_id;
    SELECT count(*) INTO v_count FROM hearth_data.identities i WHERE i.identity_id = ANY (p_identity_ids);
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION hearth.touch_identities(uuid[], timestamptz) IS
    'Marks identities with an open connection as active (at most once a minute each); returns how many exist.';
REVOKE ALL ON FUNCTION hearth.touch_identities(uuid[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.touch_identities(uuid[], timestamptz) TO hearth_app;
