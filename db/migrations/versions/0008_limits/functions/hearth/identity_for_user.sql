-- identity_for_user: the identity of an app's own user (its external id, the `sub` of the app's token),
-- created on first sight; a display name given replaces the stored one. Says whether it was created, so
-- the app answers 201 or 200. Such identities are not anonymous: identity_idle_timeout leaves them alone.
-- HT400 for an empty or over-long external id or display name.
CREATE OR REPLACE FUNCTION hearth.identity_for_user(
    p_external_id text,
    p_display_name text DEFAULT NULL
)
RETURNS TABLE (identity_id uuid, created boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_identity_id uuid;
BEGIN
    PERFORM hearth_data.require(p_external_id IS NOT NULL AND length(p_external_id) BETWEEN 1 AND 200,
                                'p_external_id must be 1 to 200 characters');
    PERFORM hearth_data.require(p_display_name IS NULL OR length(p_display_name) BETWEEN 1 AND 100,
                                'p_display_name must be 1 to 100 characters');
    -- Insert, else update: between the two another call may create or delete the row, so try again.
    LOOP
        INSERT INTO hearth_data.identities (display_name, external_id) VALUES (p_display_name, p_external_id)
        ON CONFLICT (external_id) DO NOTHING
        RETURNING identities.identity_id INTO v_identity_id;
        IF FOUND THEN
            RETURN QUERY SELECT v_identity_id, true;
            RETURN;
        END IF;
        UPDATE hearth_data.identities i
           SET display_name = COALESCE(p_display_name, i.display_name), last_active_at = now()
         WHERE i.external_id = p_external_id
        RETURNING i.identity_id INTO v_identity_id;
        IF FOUND THEN
            RETURN QUERY SELECT v_identity_id, false;
            RETURN;
        END IF;
    END LOOP;
END
$$;

COMMENT ON FUNCTION hearth.identity_for_user(text, text) IS
    'The identity of an app''s own user (external id), created on first sight; whether it was created.';
REVOKE ALL ON FUNCTION hearth.identity_for_user(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.identity_for_user(text, text) TO hearth_app;
