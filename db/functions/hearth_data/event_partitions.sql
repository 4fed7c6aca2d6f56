-- event_partitions: the ranged partitions of the events table (not the default one), oldest first, with
-- their bounds [lower, upper) read from the catalog.
CREATE OR REPLACE FUNCTION hearth_data.event_partitions()
RETURNS TABLE (partition regclass, lower timestamptz, upper timestamptz)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT b.oid::regclass, b.bounds[1]::timestamptz, b.bounds[2]::timestamptz
      FROM (SELECT c.oid, regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                       '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$') AS bounds
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'hearth_data.events'::regclass) b
     WHERE b.bounds IS NOT NULL
     ORDER BY 2
$$;

COMMENT ON FUNCTION hearth_data.event_partitions()
    IS 'The ranged partitions of the events table with their bounds, oldest first.';
REVOKE ALL ON FUNCTION hearth_data.event_partitions() FROM PUBLIC;
