-- enqueue_match: an idle identity joins the matchmaking queue (state waiting, queued now); a waiting
-- one keeps its place. Returns the new state. Wakes the app's matchers (NOTIFY hearth_match).
-- HT404 no such identity, HT409 already in a match (connecting or in_call).
CREATE OR REPLACE FUNCTION hearth.enqueue_match(p_identity_id uuid)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
BEGIN
    PERFORM hearth_data.require(p_identity_id IS NOT NULL, 'p_identity_id must not be null');
    SELECT i.match_state INTO v_state FROM hearth_data.identities i WHERE i.identity_id = p_identity_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no identity %', p_identity_id USING ERRCODE = 'HT404';
    END IF;
    IF v_state IN ('connecting', 'in_call') THEN
        RAISE EXCEPTION 'identity % is already in a match', p_identity_id USING ERRCODE = 'HT409';
    END IF;
    UPDATE hearth_data.identities
       SET match_state = 'waiting', queued_at = COALESCE(queued_at, now()), last_active_at = now()
     WHERE identity_id = p_identity_id;
    PERFORM pg_notify('hearth_match', '');
    RETURN 'waiting';
END
$$;

COMMENT ON FUNCTION hearth.enqueue_match(uuid) IS
    'Puts an identity in the matchmaking queue; returns its state (waiting). HT409 if already in a match.';
REVOKE ALL ON FUNCTION hearth.enqueue_match(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.enqueue_match(uuid) TO hearth_app;
