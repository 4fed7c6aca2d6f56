-- Hearth 0007 undone (before the previous function texts are reloaded).
DROP FUNCTION hearth.broadcast(text[]);
DROP FUNCTION hearth.resume_streams(uuid[], bigint[]);
DELETE FROM hearth_data.settings WHERE key IN ('frame_rate_limit', 'broadcast_rate_limit');
