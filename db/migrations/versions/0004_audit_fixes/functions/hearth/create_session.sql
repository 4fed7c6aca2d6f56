-- create_session: a new open session (status waiting until someone joins) with a unique 6-character code.
-- kinds: room, pairing, match. p_idle_timeout overrides session_idle_timeout; p_ttl sets a hard
-- expires_at. HT400 for an unknown kind, non-positive limits or timeouts, non-object or oversize metadata.
CREATE OR REPLACE FUNCTION hearth.create_session(
    p_kind text DEFAULT 'room',
    p_name text DEFAULT NULL,
    p_max_participants integer DEFAULT NULL,
    p_idle_timeout interval DEFAULT NULL,
    p_ttl interval DEFAULT NULL,
    p_metadata jsonb DEFAULT '{}'
)
RETURNS TABLE (session_id uuid, code text, expires_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := now();
    v_expires_at timestamptz;
BEGIN
    PERFORM hearth_data.require(p_kind IN ('room', 'pairing', 'match'), 'p_kind must be room, pairing or match');
    PERFORM hearth_data.require(p_name IS NULL OR length(p_name) BETWEEN 1 AND 200,
                                'p_name must be 1 to 200 characters');
    PERFORM hearth_data.require(p_max_participants IS NULL OR p_max_participants BETWEEN 1 AND 10000,
                                'p_max_participants must be between 1 and 10000');
    PERFORM hearth_data.require(p_idle_timeout IS NULL
                                OR (p_idle_timeout > interval '0' AND p_idle_timeout <= interval '365 days'),
                                'p_idle_timeout must be positive and at most 365 days');
    PERFORM hearth_data.require(p_ttl IS NULL OR (p_ttl > interval '0' AND p_ttl <= interval '365 days'),
                                'p_ttl must be positive and at most 365 days');
    PERFORM hearth_data.require(p_metadata IS NULL OR jsonb_typeof(p_metadata) = 'object',
                                'p_metadata must be a JSON object');
    PERFORM hearth_data.require(p_metadata IS NULL OR octet_length(p_metadata::text) <= 16384,
                                'p_metadata must be at most 16 KiB');
    v_expires_at := v_now + p_ttl;

    -- A code collides with an open session's about once in 887 million per open session: retry.
    FOR attempt IN 1..20 LOOP
        RETURN QUERY
        INSERT INTO hearth_data.sessions AS s
            (kind, name, code, max_participants, idle_timeout, expires_at, metadata, created_at, last_activity_at)
        VALUES
            (p_kind, p_name, hearth_data.new_code(), p_max_participants, p_idle_timeout, v_expires_at,
             COALESCE(p_metadata, '{}'), v_now, v_now)
        ON CONFLICT (code) WHERE status IN ('waiting', 'active') DO NOTHING
        RETURNING s.session_id, s.code, s.expires_at;
        IF FOUND THEN
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'could not allocate a free session code' USING ERRCODE = 'HT409';
END
$$;

COMMENT ON FUNCTION hearth.create_session(text, text, integer, interval, interval, jsonb) IS
    'Creates a session (room, pairing or match) with a unique 6-character code; returns id, code, expires_at.';
REVOKE ALL ON FUNCTION hearth.create_session(text, text, integer, interval, interval, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.create_session(text, text, integer, interval, interval, jsonb) TO hearth_app;
