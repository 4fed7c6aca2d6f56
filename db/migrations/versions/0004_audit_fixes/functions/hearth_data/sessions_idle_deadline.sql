-- sessions_idle_deadline: keeps sessions.idle_deadline = last_activity_at + the effective idle timeout
-- (the session's own, or the session_idle_timeout setting), so expiry is one index range scan.
CREATE OR REPLACE FUNCTION hearth_data.sessions_idle_deadline()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.idle_deadline := NEW.last_activity_at
        + COALESCE(NEW.idle_timeout, hearth_data.setting_interval('session_idle_timeout'));
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION hearth_data.sessions_idle_deadline() IS 'Trigger: recomputes sessions.idle_deadline.';
REVOKE ALL ON FUNCTION hearth_data.sessions_idle_deadline() FROM PUBLIC;

DROP TRIGGER IF EXISTS sessions_idle_deadline ON hearth_data.sessions;
CREATE TRIGGER sessions_idle_deadline
    BEFORE INSERT OR UPDATE OF last_activity_at, idle_timeout ON hearth_data.sessions
    FOR EACH ROW EXECUTE FUNCTION hearth_data.sessions_idle_deadline();
