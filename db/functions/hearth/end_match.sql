-- end_match: one of a match's two identities ends it. skip: both go back to waiting and are not
-- matched with each other again within rematch_cooldown; end: p_by goes idle, the other back to
-- waiting. The session ends, the LiveKit room is deleted, match.ended goes to both.
-- HT400 bad action, HT404 no such match, HT403 p_by is not in it, HT410 already ended.
CREATE OR REPLACE FUNCTION hearth.end_match(p_session_id uuid, p_by uuid, p_action text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_match hearth_data.matches%ROWTYPE;
BEGIN
    PERFORM hearth_data.require(p_session_id IS NOT NULL, 'p_session_id must not be null');
    PERFORM hearth_data.require(p_by IS NOT NULL, 'p_by must not be null');
    PERFORM hearth_data.require(p_action IN ('skip', 'end'), 'p_action must be skip or end');
    -- The session row first, then the match (db/schema.sql's lock order).
    PERFORM FROM hearth_data.sessions s WHERE s.session_id = p_session_id FOR UPDATE;
    SELECT * INTO v_match FROM hearth_data.matches m WHERE m.session_id = p_session_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no match %', p_session_id USING ERRCODE = 'HT404';
    END IF;
    IF p_by NOT IN (v_match.identity_a, v_match.identity_b) THEN
        RAISE EXCEPTION 'identity % is not in match %', p_by, p_session_id USING ERRCODE = 'HT403';
    END IF;
    IF v_match.ended_at IS NOT NULL THEN
        RAISE EXCEPTION 'match % has already ended', p_session_id USING ERRCODE = 'HT410';
    END IF;
    PERFORM hearth_data.finish_match(p_session_id, p_by, p_action, now());
END
$$;

COMMENT ON FUNCTION hearth.end_match(uuid, uuid, text) IS
    'Ends a match (skip: both wait again, with a rematch cooldown; end: the ender goes idle). Emits match.ended.';
REVOKE ALL ON FUNCTION hearth.end_match(uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.end_match(uuid, uuid, text) TO hearth_app;
