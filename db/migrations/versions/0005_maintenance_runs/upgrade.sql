-- Hearth 0005, before the functions are loaded (as hearth_owner): where the app's maintenance runner
-- records the last run of each job, for `hearth jobs`.
SET ROLE hearth_owner;
CREATE TABLE hearth_data.maintenance_runs (
    job              text PRIMARY KEY,
    every            interval NOT NULL,
    instance         text NOT NULL,
    last_started_at  timestamptz NOT NULL,
    last_finished_at timestamptz NOT NULL,
    last_succeeded   boolean NOT NULL,
    last_result      text NOT NULL,
    runs             bigint NOT NULL,
    failures         bigint NOT NULL
);
RESET ROLE;
