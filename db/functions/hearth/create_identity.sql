-- create_identity: a new identity, anonymous when p_external_id is null. The same external id returns
-- the same identity (its display name updated when one is given). HT400 for empty or over-long text.
CREATE OR REPLACE FUNCTION hearth.create_identity(
    p_display_name text DEFAULT NULL,
    p_external_id text DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_identity_id uuid;
BEGIN
    PERFORM hearth_data.require(p_display_name IS NULL OR length(p_display_name) BETWEEN 1 AND 100,
                                'p_display_name must be 1 to 100 characters');
    PERFORM hearth_data.require(p_external_id IS NULL OR length(p_external_id) BETWEEN 1 AND 200,
                                'p_external_id must be 1 to 200 characters');
    IF p_external_id IS NULL THEN
        INSERT INTO hearth_data.identities (display_name) VALUES (p_display_name)
        RETURNING identity_id INTO v_identity_id;
    ELSE
        INSERT INTO hearth_data.identities (display_name, external_id) VALUES (p_display_name, p_external_id)
        ON CONFLICT (external_id) DO UPDATE
           SET display_name = COALESCE(EXCLUDED.display_name, hearth_data.identities.display_name),
               last_active_at = now()
        RETURNING identity_id INTO v_identity_id;
    END IF;
    RETURN v_identity_id;
END
$$;

COMMENT ON FUNCTION hearth.create_identity(text, text) IS
    'Creates an identity (anonymous without p_external_id; the same external id returns the same identity).';
REVOKE ALL ON FUNCTION hearth.create_identity(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.create_identity(text, text) TO hearth_app;
