-- event_frames: what the relay sends. For each stream of p_stream_ids (sessions or identities), its
-- events after the matching p_after, in order, at most p_limit per stream, each as the client frame's
-- ready JSON text (the payload with type, seq, session_id, at, and identity_id on an identity stream),
-- plus what routing needs: the stream, seq, whether it is an identity stream, type, the one participant a signal is for, and when the
-- event was written. The relay calls it when doorbells ring (one call for every stream they name) and
-- to catch a stream up; a doorbell naming no row yields nothing. Unknown streams yield nothing.
-- HT400 for null or unequal arrays, more than 10,000 streams, a negative p_after, p_limit outside 1..10000.
CREATE OR REPLACE FUNCTION hearth.event_frames(
    p_stream_ids uuid[],
    p_after bigint[],
    p_limit integer DEFAULT 500
)
RETURNS TABLE (
    stream_id uuid, seq bigint, identity boolean, type text, recipient text, emitted_at timestamptz, frame text
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM hearth_data.require(cardinality(p_stream_ids) = cardinality(p_after),
                                'p_stream_ids and p_after must be arrays of the same length');
    PERFORM hearth_data.require(cardinality(p_stream_ids) <= 10000, 'at most 10000 streams per call');
    PERFORM hearth_data.require(p_limit BETWEEN 1 AND 10000, 'p_limit must be between 1 and 10000');
    PERFORM hearth_data.require(NOT EXISTS (SELECT FROM unnest(p_after) a WHERE a IS NULL OR a < 0),
                                'p_after must hold sequence numbers (0 or more)');
    RETURN QUERY
    SELECT e.stream_id, e.seq, e.scope = 'identity', e.type,
           CASE WHEN e.type = 'signal' THEN e.payload ->> 'to' END,
           e.emitted_at,
           (e.payload || CASE e.scope
                WHEN 'session' THEN jsonb_build_object('type', e.type, 'seq', e.seq, 'session_id', e.stream_id,
                                                       'at', e.created_at)
                ELSE jsonb_build_object('type', e.type, 'seq', e.seq, 'session_id', NULL,
                                        'identity_id', e.stream_id, 'at', e.created_at)
            END)::text
      FROM unnest(p_stream_ids, p_after) WITH ORDINALITY AS s(stream_id, after, n)
     CROSS JOIN LATERAL (
           SELECT e2.* FROM hearth_data.events e2
            WHERE e2.stream_id = s.stream_id AND e2.seq > s.after
            ORDER BY e2.seq
            LIMIT p_limit) e
     ORDER BY s.n, e.seq;
END
$$;

COMMENT ON FUNCTION hearth.event_frames(uuid[], bigint[], integer) IS
    'The relay''s read: events of many streams after given seqs, as ready client frames (JSON text), in order.';
REVOKE ALL ON FUNCTION hearth.event_frames(uuid[], bigint[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.event_frames(uuid[], bigint[], integer) TO hearth_app;
