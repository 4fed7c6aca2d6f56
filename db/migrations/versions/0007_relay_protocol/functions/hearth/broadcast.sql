-- broadcast: puts a batch of the relay's ephemeral broadcast payloads on channel hearth_broadcast, one
-- NOTIFY per payload, in order, in the caller's transaction; returns how many. No row is written, and
-- the transaction commits with synchronous_commit off (set_config(..., true): for this transaction
-- only), so a broadcast never waits for a WAL flush: broadcasts are at most once by contract. The
-- relay sends many broadcasts per payload and many payloads per call, so the commit lock every
-- notifying transaction takes (PreCommit_Notify) is taken once per batch, not once per broadcast.
-- The payloads are opaque here: each is MACed by the sending instance with a key the database never
-- sees, and receivers drop what does not verify, so a caller of this function (or of pg_notify) cannot
-- put a deliverable broadcast on the channel. HT400 for a null or empty array, a null or empty
-- payload, one of 8000 bytes or more (NOTIFY's limit), more than 1000 payloads.
CREATE OR REPLACE FUNCTION hearth.broadcast(p_payloads text[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_payload text;
BEGIN
    PERFORM hearth_data.require(cardinality(p_payloads) BETWEEN 1 AND 1000, 'p_payloads must hold 1 to 1000 payloads');
    PERFORM hearth_data.require(NOT EXISTS (SELECT FROM unnest(p_payloads) p
                                             WHERE p IS NULL OR octet_length(p) NOT BETWEEN 1 AND 7999),
                                'each payload must be 1 to 7999 bytes');
    PERFORM set_config('synchronous_commit', 'off', true);
    FOREACH v_payload IN ARRAY p_payloads LOOP
        PERFORM pg_notify('hearth_broadcast', v_payload);
    END LOOP;
    RETURN cardinality(p_payloads);
END
$$;

COMMENT ON FUNCTION hearth.broadcast(text[]) IS
    'The relay''s ephemeral broadcasts: NOTIFYs a batch of MACed payloads on hearth_broadcast, no row, '
    'synchronous_commit off. Returns the count.';
REVOKE ALL ON FUNCTION hearth.broadcast(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.broadcast(text[]) TO hearth_app;
