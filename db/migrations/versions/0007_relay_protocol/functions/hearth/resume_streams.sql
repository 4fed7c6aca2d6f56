-- resume_streams: where a reconnecting websocket's streams pick up, decided in one read. For each stream
-- of p_stream_ids (a session's or an identity's) and the last seq the client holds in the matching
-- p_after (null: the client does not resume that stream), the stream's head (its last seq), the seq to
-- replay after, and whether that replay is complete:
--   p_after null or the head                  -> replay nothing more, recovered;
--   p_after beyond the head                   -> resume from the head, not recovered (the client holds
--                                                state the server no longer has);
--   events after p_after all kept             -> replay from p_after, recovered;
--   events after p_after pruned meanwhile     -> replay from the oldest event kept (or from the head when
--                                                none is), not recovered: never a partial recovery.
-- Seqs are dense per stream (each allocated under the stream row's lock, in the transaction that writes
-- its row) and prune_events only ever cuts a stream's oldest events, so the events after p_after are
-- complete exactly when seq p_after + 1 is still in the table: one index probe per stream.
-- HT400 for null or unequal arrays, a null stream, a negative p_after, more than 100 streams;
-- HT404 for a stream that is neither a session nor an identity.
CREATE OR REPLACE FUNCTION hearth.resume_streams(
    p_stream_ids uuid[],
    p_after bigint[]
)
RETURNS TABLE (stream_id uuid, head bigint, resume_after bigint, recovered boolean)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_unknown uuid;
BEGIN
    PERFORM hearth_data.require(cardinality(p_stream_ids) = cardinality(p_after),
                                'p_stream_ids and p_after must be arrays of the same length');
    PERFORM hearth_data.require(cardinality(p_stream_ids) <= 100, 'at most 100 streams per call');
    PERFORM hearth_data.require(array_position(p_stream_ids, NULL) IS NULL, 'p_stream_ids must not hold nulls');
    PERFORM hearth_data.require(NOT EXISTS (SELECT FROM unnest(p_after) a WHERE a < 0),
                                'p_after must hold sequence numbers (0 or more) or nulls');
    SELECT s.id INTO v_unknown FROM unnest(p_stream_ids) s(id)
     WHERE NOT EXISTS (SELECT FROM hearth_data.sessions se WHERE se.session_id = s.id)
       AND NOT EXISTS (SELECT FROM hearth_data.identities i WHERE i.identity_id = s.id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'no session or identity %', v_unknown USING ERRCODE = 'HT404';
    END IF;
    RETURN QUERY
    SELECT k.stream_id, k.head,
           CASE WHEN k.after IS NULL OR k.after >= k.head OR k.first_kept IS NULL THEN k.head
                ELSE k.first_kept - 1 END,
           k.after IS NULL OR k.after = k.head OR (k.after < k.head AND COALESCE(k.first_kept = k.after + 1, false))
      FROM (SELECT s.stream_id, s.after, s.n, COALESCE(se.event_seq, i.event_seq) AS head,
                   (SELECT min(e.seq) FROM hearth_data.events e
                     WHERE e.stream_id = s.stream_id AND e.seq > s.after) AS first_kept
              FROM unnest(p_stream_ids, p_after) WITH ORDINALITY AS s(stream_id, after, n)
              LEFT JOIN hearth_data.sessions se ON se.session_id = s.stream_id
              LEFT JOIN hearth_data.identities i ON i.identity_id = s.stream_id) k
     ORDER BY k.n;
END
$$;

COMMENT ON FUNCTION hearth.resume_streams(uuid[], bigint[]) IS
    'For a resuming client: each stream''s head, the seq to replay after, and whether the replay is complete '
    '(false when events were pruned or p_after is beyond the head). HT404 unknown stream.';
REVOKE ALL ON FUNCTION hearth.resume_streams(uuid[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.resume_streams(uuid[], bigint[]) TO hearth_app;
