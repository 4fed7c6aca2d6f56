-- match_waiting: pairs waiting identities, oldest first, at most p_limit matches. Candidates are locked
-- FOR UPDATE SKIP LOCKED, so concurrent callers (several app instances, pg_cron) never put one identity
-- in two matches; pairs still in their rematch cooldown are not matched. Each pair gets a match
-- session (two places) and a LiveKit room job; match.found goes to both. Returns the number of matches.
-- Callers run it again while it returns p_limit, or when another caller held some candidates.
-- HT400 for p_limit outside 1..10000.
CREATE OR REPLACE FUNCTION hearth.match_waiting(p_limit integer DEFAULT 100)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := now();
    v_ids uuid[];
    v_taken uuid[] := '{}';
    v_a uuid;
    v_b uuid;
    v_count integer := 0;
BEGIN
    PERFORM hearth_data.require(p_limit BETWEEN 1 AND 10000, 'p_limit must be between 1 and 10000');
    v_ids := ARRAY(
        SELECT i.identity_id FROM hearth_data.identities i
         WHERE i.match_state = 'waiting'
         ORDER BY i.queued_at, i.identity_id
         LIMIT p_limit * 2
           FOR UPDATE SKIP LOCKED);
    FOR i IN 1 .. COALESCE(cardinality(v_ids), 0) - 1 LOOP
        v_a := v_ids[i];
        CONTINUE WHEN v_a = ANY (v_taken);
        v_b := NULL;
        FOR j IN i + 1 .. cardinality(v_ids) LOOP
            CONTINUE WHEN v_ids[j] = ANY (v_taken);
            IF NOT EXISTS (
                SELECT FROM hearth_data.match_cooldowns c
                 WHERE c.identity_low = LEAST(v_a, v_ids[j]) AND c.identity_high = GREATEST(v_a, v_ids[j])
                   AND c.until > v_now) THEN
                v_b := v_ids[j];
                EXIT;
            END IF;
        END LOOP;
        CONTINUE WHEN v_b IS NULL;
        v_taken := v_taken || v_a || v_b;
        PERFORM hearth_data.create_match(v_a, v_b, v_now);
        v_count := v_count + 1;
        EXIT WHEN v_count >= p_limit;
    END LOOP;
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION hearth.match_waiting(integer) IS
    'Pairs waiting identities oldest first (SKIP LOCKED, cooldowns respected); returns the number of matches.';
REVOKE ALL ON FUNCTION hearth.match_waiting(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.match_waiting(integer) TO hearth_app;
