-- Hearth 0009 undone: the relay posts one message per call again.
DROP FUNCTION hearth.post_messages(uuid, uuid[], jsonb[]);
