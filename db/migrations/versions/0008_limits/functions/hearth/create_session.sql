-- create_session: a new open session (status waiting until someone joins) with a unique 6-character code.
-- kinds: room, pairing, match. p_idle_timeout overrides session_idle_timeout; p_ttl sets a hard
-- expires_at. p_created_by (the identity creating it over HTTP) counts it against
-- max_open_sessions_per_identity: the identity's open sessions are counted and the new one inserted under a
-- transaction-level advisory lock on that identity, so concurrent calls on every instance cannot pass the
-- limit together (HT429 past it). Calls without p_created_by (match sessions, DBAs) are not counted.
-- HT400 for an unknown kind, non-positive limits or timeouts, non-object or oversize metadata.
CREATE OR REPLACE FUNCTION hearth.create_session(
    p_kind text DEFAULT 'room',
    p_name text DEFAULT NULL,
    p_max_participants integer DEFAULT NULL,
    p_idle_timeout interval DEFAULT NULL,
    p_ttl interval DEFAULT NULL,
    p_metadata jsonb DEFAULT '{}',
    p_created_by uuid DEFAULT NULL
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
    v_limit integer;
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

    IF p_created_by IS NOT NULL THEN
        -- An advisory lock, not the identity's row: touch_identities updates that row on every heartbeat
        -- flush, and the lock order of db/schema.sql stays as it is.
        PERFORM pg_advisory_xact_lock(hashtextextended('hearth.open-sessions:' || p_created_by::text, 0));
        v_limit := hearth_data.setting_integer('max_open_sessions_per_identity');
        IF (SELECT count(*) FROM hearth_data.sessions s
             WHERE s.created_by = p_created_by AND s.status IN ('waiting', 'active')
               AND (s.expires_at IS NULL OR s.expires_at > v_now)) >= v_limit THEN
            RAISE EXCEPTION 'this identity already has % open sessions and waiting displays (the limit)', v_limit
                USING ERRCODE = 'HT429';
        END IF;
    END IF;

    -- A code collides with an open session's about once in 887 million per open session: retry.
    FOR attempt IN 1..20 LOOP
        RETURN QUERY
        INSERT INTO hearth_data.sessions AS s
            (kind, name, code, max_participants, idle_timeout, expires_at, metadata, created_at, last_activity_at,
             created_by)
        VALUES
            (p_kind, p_name, hearth_data.new_code(), p_max_participants, p_idle_timeout, v_expires_at,
             COALESCE(p_metadata, '{}'), v_now, v_now, p_created_by)
        ON CONFLICT (code) WHERE status IN ('waiting', 'active') DO NOTHING
        RETURNING s.session_id, s.code, s.expires_at;
        IF FOUND THEN
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'could not allocate a free session code' USING ERRCODE = 'HT409';
END
$$;

COMMENT ON FUNCTION hearth.create_session(text, text, integer, interval, interval, jsonb, uuid) IS
    'Creates a session (room, pairing or match) with a unique 6-character code; returns id, code, expires_at. '
    'p_created_by counts it against max_open_sessions_per_identity (HT429 past it).';
REVOKE ALL ON FUNCTION hearth.create_session(text, text, integer, interval, interval, jsonb, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.create_session(text, text, integer, interval, interval, jsonb, uuid) TO hearth_app;
