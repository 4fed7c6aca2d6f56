-- Hearth 0006 undone, after the previous function texts were reloaded. Role hearth_publisher stays:
-- other databases of the cluster may use it; here it loses what 0006 gave it.
DROP FUNCTION hearth.publish(uuid, text, jsonb);
REVOKE USAGE ON SCHEMA hearth FROM hearth_publisher;
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM hearth_publisher', current_database());
    END IF;
END
$$;
