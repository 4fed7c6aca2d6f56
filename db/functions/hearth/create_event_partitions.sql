-- create_event_partitions: makes the partitions of the events table ahead of time, each of the
-- event_partition_interval setting (15 minutes; aligned on multiples of it since the epoch), until they
-- cover four intervals past now; returns how many it made. pg_cron (or the app's maintenance runner):
-- every minute, so a run that cannot take its locks is retried soon, an hour before the partition is
-- needed.
-- A partition is made after the newest one and after the newest row of the default partition (where
-- events go when no partition covers them: before the first run, or while this job stops), so it never
-- takes rows the default holds; a first partition starts at the interval holding now.
-- Making a partition locks the events table and its default partition (ACCESS EXCLUSIVE) for a catalog
-- change and a scan of the default partition (normally empty), until commit: each try waits at most lock_timeout (200 ms)
-- behind readers, so post_message waits at most that long behind it; a try that times out ends the run
-- (the next one retries). HT400 for an interval setting with months, under a second or over 7 days.
CREATE OR REPLACE FUNCTION hearth.create_event_partitions()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '200ms'
AS $$
DECLARE
    v_interval interval := hearth_data.setting_interval('event_partition_interval');
    v_origin constant timestamptz := 'epoch';
    v_now timestamptz := clock_timestamp();
    v_lower timestamptz;
    v_upper timestamptz;
    v_newest timestamptz;
    v_made integer := 0;
    v_tries integer := 0;
BEGIN
    PERFORM hearth_data.require(date_part('month', v_interval) = 0 AND date_part('year', v_interval) = 0
                                AND v_interval BETWEEN interval '1 second' AND interval '7 days',
                                'event_partition_interval must be between 1 second and 7 days, without months');
    LOOP
        v_tries := v_tries + 1;
        EXIT WHEN v_tries > 100;
        SELECT max(p.upper) INTO v_lower FROM hearth_data.event_partitions() p;
        v_lower := GREATEST(v_lower, date_bin(v_interval, v_now, v_origin));
        EXIT WHEN v_lower >= v_now + 4 * v_interval;
        BEGIN
            -- The table first (then its partitions, the order writers and readers take them), under the lock
            -- that making a partition takes anyway: the default partition's newest row is then final.
            LOCK TABLE ONLY hearth_data.events IN ACCESS EXCLUSIVE MODE;
            SELECT max(d.emitted_at) INTO v_newest FROM hearth_data.events_default d;
            IF v_newest >= v_lower THEN
                v_lower := date_bin(v_interval, v_newest, v_origin) + v_interval;
            END IF;
            v_upper := date_bin(v_interval, v_lower, v_origin) + v_interval;
            EXECUTE format('CREATE TABLE hearth_data.%I PARTITION OF hearth_data.events FOR VALUES FROM (%L) TO (%L)',
                           'events_p' || to_char(v_lower AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS'), v_lower, v_upper);
            v_made := v_made + 1;
        EXCEPTION WHEN lock_not_available THEN
            EXIT;
        END;
    END LOOP;
    RETURN v_made;
END
$$;

COMMENT ON FUNCTION hearth.create_event_partitions() IS
    'Makes the events table''s partitions (event_partition_interval each) until four intervals past now; '
    'returns how many. pg_cron: every minute.';
REVOKE ALL ON FUNCTION hearth.create_event_partitions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hearth.create_event_partitions() TO hearth_app;
