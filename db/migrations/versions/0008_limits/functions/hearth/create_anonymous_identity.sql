-- create_anonymous_identity: a new anonymous identity for a client, counted against identity_rate_limit:
-- at most that many per client key (the app passes the client's address) in any minute, on every
-- instance. The key's creations are counted and the new one recorded under a transaction-level advisory
-- lock on the key, so concurrent calls cannot pass the limit together. A null key is not counted.
-- HT429 past the limit, its DETAIL the whole seconds until one more is allowed (the app's Retry-After);
-- HT400 for an empty or over-long display name or an over-long key.
CREATE OR REPLACE FUNCTION hearth.create_anonymous_identity(
    p_client_key text,
    p_display_name text DEFAULT NULL,
    p_now timestamptz DEFAULT now()
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit integer;
    v_count integer;
    v_oldest timestamptz;
    v_retry integer;
BEGIN
    PERFORM hearth_data.require(p_client_key IS NULL OR length(p_client_key) <= 200,
                                'p_client_key must be at most 200 characters');
    PERFORM hearth_data.require(p_display_name IS NULL OR length(p_display_name) BETWEEN 1 AND 100,
                                'p_display_name must be 1 to 100 characters');
    PERFORM hearth_data.require(isfinite(p_now), 'p_now must be a finite time');
    IF p_client_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('hearth.identity-creations:' || p_client_key, 0));
        -- Creations older than a minute count for nothing any more: each call clears up to 100 of them.
        DELETE FROM hearth_data.identity_creations c
         WHERE c.ctid = ANY (ARRAY(SELECT c2.ctid FROM hearth_data.identity_creations c2
                                    WHERE c2.created_at <= p_now - interval '1 minute' LIMIT 100));
        v_limit := hearth_data.setting_integer('identity_rate_limit');
        SELECT count(*), min(c.created_at) INTO v_count, v_oldest
          FROM hearth_data.identity_creations c
         WHERE c.client_key = p_client_key AND c.created_at > p_now - interval '1 minute';
        IF v_count >= v_limit THEN
            v_retry := greatest(1, ceil(extract(epoch FROM v_oldest + interval '1 minute' - p_now)))::integer;
            RAISE EXCEPTION 'too many new identities from this address (% a minute): try again in % s',
                            v_limit, v_retry
                USING ERRCODE = 'HT429', DETAIL = v_retry::text;
        END IF;
        INSERT INTO hearth_data.identity_creations (client_key, created_at) VALUES (p_client_key, p_now);
    END IF;
    RETURN hearth.create_identity(p_display_name, NULL);
END
$$;

COMMENT ON FUNCTION hearth.create_anonymous_identity(text, text, timestamptz) IS
    'Creates an anonymous identity for a client key, at most identity_rate_limit per key per minute (HT429).';
REVOKE ALL ON FUNCTION hearth.create_anonymous_identity(text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.create_anonymous_identity(text, text, timestamptz) TO hearth_app;
