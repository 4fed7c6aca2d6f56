-- Hearth 0006 undone (before the previous function texts are reloaded).
DROP FUNCTION hearth.resume_streams(uuid[], bigint[]);
