-- events_since: the events of a stream after sequence number p_after, in order, at most p_limit
-- (1..10000). The stream is a session's; an identity's id gives that identity's own stream
-- (match.found, match.ended). Events pruned by prune_events are gone. HT400 bad arguments,
-- HT404 no such session or identity.
CREATE OR REPLACE FUNCTION hearth.events_since(
    p_session_id uuid,
    p_after bigint,
    p_limit integer DEFAULT 500
)
RETURNS TABLE (seq bigint, type text, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM hearth_data.require(p_session_id IS NOT NULL, 'p_session_id must not be null');
    PERFORM hearth_data.require(p_after >= 0, 'p_after must be a sequence number (0 or more)');
    PERFORM hearth_data.require(p_limit BETWEEN 1 AND 10000, 'p_limit must be between 1 and 10000');
    IF NOT EXISTS (SELECT FROM hearth_data.sessions s WHERE s.session_id = p_session_id)
       AND NOT EXISTS (SELECT FROM hearth_data.identities i WHERE i.identity_id = p_session_id) THEN
        RAISE EXCEPTION 'no session %', p_session_id USING ERRCODE = 'HT404';
    END IF;
    RETURN QUERY
    SELECT e.seq, e.type, e.payload, e.created_at FROM hearth_data.events e
     WHERE e.stream_id = p_session_id AND e.seq > p_after
     ORDER BY e.seq
     LIMIT p_limit;
END
$$;

COMMENT ON FUNCTION hearth.events_since(uuid, bigint, integer) IS
    'The events of a session (or identity) stream after p_after, in sequence order; HT404 if unknown.';
REVOKE ALL ON FUNCTION hearth.events_since(uuid, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.events_since(uuid, bigint, integer) TO hearth_app;
