-- post_messages: group commit of chat messages into one session (events message, in array order), for a
-- relay that gathers the frames reaching it within a tick. One row per element, in order: its seq, or
-- the error post_message would have raised for it alone (error_code, error_message; seq NULL). Each
-- element is checked as post_message checks it (body a JSON object of at most 32 KiB, participant known
-- to this session, session open, participant present), so a bad element fails alone and its batch-mates
-- commit. The good elements take consecutive seqs under the session row's lock, so sequence order is
-- still commit order, with one doorbell for the batch naming its first seq (a relay reads on from there).
-- HT400 only for bad arrays (NULL, lengths differ, empty or over 1,000 elements).
CREATE OR REPLACE FUNCTION hearth.post_messages(p_session_id uuid, p_participant_ids uuid[], p_bodies jsonb[])
RETURNS TABLE (seq bigint, error_code text, error_message text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_open boolean;
    v_codes text[];
    v_messages text[];
    v_count integer;
    v_first bigint;
    v_emitted_at timestamptz;
BEGIN
    PERFORM hearth_data.require(p_session_id IS NOT NULL, 'p_session_id must not be null');
    PERFORM hearth_data.require(array_ndims(p_participant_ids) = 1 AND array_ndims(p_bodies) = 1
                                AND cardinality(p_participant_ids) = cardinality(p_bodies),
                                'p_participant_ids and p_bodies must be non-empty arrays of the same length');
    PERFORM hearth_data.require(cardinality(p_bodies) <= 1000, 'a batch holds at most 1,000 messages');

    -- The one session row this call waits for (lock order 3), before reading who is present under it.
    SELECT s.status IN ('waiting', 'active') AND s.due_at > now() INTO v_open
      FROM hearth_data.sessions s WHERE s.session_id = p_session_id FOR UPDATE;

    SELECT array_agg(c.code ORDER BY c.n), array_agg(c.message ORDER BY c.n), count(*) FILTER (WHERE c.code IS NULL)
      INTO v_codes, v_messages, v_count
      FROM (SELECT u.n,
                   CASE WHEN u.pid IS NULL OR u.body IS NULL OR jsonb_typeof(u.body) <> 'object'
                             OR octet_length(u.body::text) > 32768 THEN 'HT400'
                        WHEN pa.participant_id IS NULL THEN 'HT404'
                        WHEN v_open IS NOT TRUE THEN 'HT410'
                        WHEN pa.left_at IS NOT NULL THEN 'HT403' END AS code,
                   CASE WHEN u.pid IS NULL THEN 'p_participant_id must not be null'
                        WHEN u.body IS NULL OR jsonb_typeof(u.body) <> 'object' THEN 'p_body must be a JSON object'
                        WHEN octet_length(u.body::text) > 32768 THEN 'p_body must be at most 32 KiB'
                        WHEN pa.participant_id IS NULL THEN 'no participant ' || u.pid
                        WHEN v_open IS NOT TRUE THEN 'session ' || p_session_id || ' is expired or ended'
                        WHEN pa.left_at IS NOT NULL THEN 'participant ' || u.pid || ' has left the session'
                   END AS message
              FROM unnest(p_participant_ids, p_bodies) WITH ORDINALITY AS u(pid, body, n)
              LEFT JOIN hearth_data.participants pa
                ON pa.participant_id = u.pid AND pa.session_id = p_session_id) c;

    IF v_count > 0 THEN
        -- emit_event's rules, for v_count events at once: seqs from the stream row's counter, emitted_at
        -- never earlier than the stream's previous event, messages counted, activity recorded (the
        -- session is open, so not yet due).
        UPDATE hearth_data.sessions
           SET event_seq = event_seq + v_count,
               message_count = message_count + v_count,
               last_event_at = GREATEST(last_event_at, clock_timestamp()),
               last_activity_at = GREATEST(last_activity_at, now())
         WHERE session_id = p_session_id
        RETURNING event_seq - v_count + 1, last_event_at INTO v_first, v_emitted_at;

        INSERT INTO hearth_data.events (stream_id, seq, scope, type, payload, created_at, emitted_at)
        SELECT p_session_id, v_first + row_number() OVER (ORDER BY u.n) - 1, 'session', 'message',
               jsonb_build_object('participant_id', u.pid, 'body', u.body), now(), v_emitted_at
          FROM unnest(p_participant_ids, p_bodies, v_codes) WITH ORDINALITY AS u(pid, body, code, n)
         WHERE u.code IS NULL;
        PERFORM pg_notify('hearth_events', p_session_id::text || ' ' || v_first);
    END IF;

    RETURN QUERY
        SELECT CASE WHEN u.code IS NULL
                    THEN v_first + count(*) FILTER (WHERE u.code IS NULL) OVER (ORDER BY u.n) - 1 END,
               u.code, u.message
          FROM unnest(v_codes, v_messages) WITH ORDINALITY AS u(code, message, n)
         ORDER BY u.n;
END
$$;

COMMENT ON FUNCTION hearth.post_messages(uuid, uuid[], jsonb[]) IS
    'Posts a batch of chat messages (events message) into one session in one transaction, in order; one row '
    'per message: its seq, or the error it alone fails with (HT400 bad body, HT404 not a participant of the '
    'session, HT410 session over, HT403 left). One doorbell per batch.';
REVOKE ALL ON FUNCTION hearth.post_messages(uuid, uuid[], jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.post_messages(uuid, uuid[], jsonb[]) TO hearth_app;
