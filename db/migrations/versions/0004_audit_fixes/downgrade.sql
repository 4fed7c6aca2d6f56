-- Hearth 0004 undone (before the previous function texts are reloaded): the migrating role owns
-- Hearth's objects again; PUBLIC gets TEMP and CONNECT back. Role hearth_owner stays: other databases of the
-- cluster may use it.
DROP FUNCTION hearth.event_frames(uuid[], bigint[], integer);
DROP FUNCTION hearth_data.expiry_reason(text, text, timestamptz, timestamptz);
DROP FUNCTION hearth.join_by_code(text, uuid, text, timestamptz);
DROP FUNCTION hearth_data.join_participant(uuid, uuid, text, timestamptz);
CREATE INDEX events_created_at_idx ON hearth_data.events (created_at);
DROP INDEX hearth_data.events_emitted_at_idx;
ALTER TABLE hearth_data.events DROP COLUMN emitted_at;
ALTER TABLE hearth_data.sessions DROP COLUMN last_event_at;
ALTER TABLE hearth_data.identities DROP COLUMN last_event_at;
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE format('GRANT TEMPORARY, CONNECT ON DATABASE %1$I TO PUBLIC; '
                       'REVOKE CONNECT ON DATABASE %1$I FROM hearth_app, hearth_admin', current_database());
    END IF;
END
$$;

ALTER DEFAULT PRIVILEGES FOR ROLE hearth_owner IN SCHEMA hearth_data REVOKE SELECT ON TABLES FROM hearth_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE hearth_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA hearth_data GRANT SELECT ON TABLES TO hearth_admin;

DO $$
DECLARE
    v_statement text;
BEGIN
    FOR v_statement IN
        SELECT format('ALTER TABLE %s OWNER TO %I', c.oid::regclass, current_user)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('hearth', 'hearth_data') AND c.relkind IN ('r', 'p', 'v', 'm')
        UNION ALL
        SELECT format('ALTER %s %s OWNER TO %I',
                      CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, p.oid::regprocedure,
                      current_user)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('hearth', 'hearth_data')
    LOOP
        EXECUTE v_statement;
    END LOOP;
    EXECUTE format('ALTER SCHEMA hearth OWNER TO %I', current_user);
    EXECUTE format('ALTER SCHEMA hearth_data OWNER TO %I', current_user);
END
$$;
