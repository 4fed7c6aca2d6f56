-- Hearth 0005 undone.
DROP FUNCTION hearth.record_maintenance_run(text, interval, text, timestamptz, boolean, text, timestamptz);
DROP FUNCTION hearth.maintenance_runs();
DROP TABLE hearth_data.maintenance_runs;
