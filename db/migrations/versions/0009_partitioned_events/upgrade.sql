-- Hearth 0009, run as hearth_owner before the functions are (re)loaded: the events table partitioned by
-- emitted_at. The table as it was becomes the default partition, rows and all: no event is copied, none
-- lost, and every stream's seq continues from its stream row's counter (the rows were never the source
-- of a seq). Writers wait on the table's lock for the length of this revision: dropping the old primary
-- key (stream_id, seq) and building the new one (stream_id, seq, emitted_at) over the existing rows, which
-- is one index build (retention keeps about an hour of events). The first create_event_partitions run
-- (every minute) then starts the ranged partitions after the newest of these rows; prune_events deletes
-- them from the default partition as they age.
LOCK TABLE hearth_data.events IN ACCESS EXCLUSIVE MODE;
ALTER TABLE hearth_data.events RENAME TO events_default;
ALTER TABLE hearth_data.events_default DROP CONSTRAINT events_pkey;
ALTER INDEX hearth_data.events_emitted_at_idx RENAME TO events_default_emitted_at_idx;

CREATE TABLE hearth_data.events (
    stream_id  uuid NOT NULL,
    seq        bigint NOT NULL,
    scope      text NOT NULL CONSTRAINT events_scope_check CHECK (scope IN ('session', 'identity')),
    type       text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    emitted_at timestamptz NOT NULL,
    PRIMARY KEY (stream_id, seq, emitted_at)
) PARTITION BY RANGE (emitted_at);
ALTER TABLE hearth_data.events ATTACH PARTITION hearth_data.events_default DEFAULT;

INSERT INTO hearth_data.settings (key, value, value_type, description) VALUES
    ('event_partition_interval', '15 minutes', 'interval', 'the span of each partition of the events table (create_event_partitions)');
