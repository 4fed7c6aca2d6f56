-- publish: an application's own event on a session's stream, from its own SQL (a trigger on its tables, a
-- job, a DBA); returns the event's seq. Same guarantees as every event: the row, its seq (commit order
-- within the stream) and the hearth_events doorbell belong to the caller's transaction, so a change that
-- rolls back publishes nothing; clients receive it live and on resume like any other event, as
-- {"type": p_type, "seq", "session_id", "at", ...p_payload}. Not participant activity: it does not keep a
-- session from going idle.
-- p_type is 'app.' and a name of 1 to 100 letters, digits and _ . : - (system types cannot be forged);
-- p_payload a JSON object of at most 64 KiB without the frame's own keys (type, seq, session_id, at).
-- HT400 bad arguments, HT404 no such session, HT410 the session is over.
-- Triggers run as the role doing the write: grant hearth_publisher to the role that writes the table, or
-- make the trigger function SECURITY DEFINER, owned by a role holding it (docs/publishing.md shows both).
CREATE OR REPLACE FUNCTION hearth.publish(p_session_id uuid, p_type text, p_payload jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session hearth_data.sessions%ROWTYPE;
BEGIN
    PERFORM hearth_data.require(p_session_id IS NOT NULL, 'p_session_id must not be null');
    PERFORM hearth_data.require(p_type ~ '^app\.[A-Za-z0-9_.:-]{1,100}$',
                                'p_type must be app. followed by 1 to 100 letters, digits, _ . : or -');
    PERFORM hearth_data.require(jsonb_typeof(p_payload) = 'object', 'p_payload must be a JSON object');
    PERFORM hearth_data.require(NOT p_payload ?| ARRAY['type', 'seq', 'session_id', 'at'],
                                'p_payload must not hold the keys type, seq, session_id or at');
    PERFORM hearth_data.require(octet_length(p_payload::text) <= 65536, 'p_payload must be at most 64 KiB');

    SELECT * INTO v_session FROM hearth_data.sessions s WHERE s.session_id = p_session_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no session %', p_session_id USING ERRCODE = 'HT404';
    END IF;
    IF v_session.status NOT IN ('waiting', 'active') OR v_session.due_at <= now() THEN
        RAISE EXCEPTION 'session % is expired or ended', p_session_id USING ERRCODE = 'HT410';
    END IF;
    RETURN hearth_data.emit_event('session', p_session_id, p_type, p_payload, now());
END
$$;

COMMENT ON FUNCTION hearth.publish(uuid, text, jsonb) IS
    'Publishes an application event (type app.<name>, payload a JSON object up to 64 KiB) on a session''s '
    'stream in the caller''s transaction; returns its seq. HT400 bad type or payload, HT404 no session, HT410 '
    'session over. Callable by hearth_publisher, e.g. from a trigger on the application''s own table.';
REVOKE ALL ON FUNCTION hearth.publish(uuid, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.publish(uuid, text, jsonb) TO hearth_app, hearth_admin, hearth_publisher;
