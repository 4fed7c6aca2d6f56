-- Hearth 0004, run by the migrating role before the functions are reloaded (as hearth_owner).
--
-- A dedicated owner: hearth_owner (NOLOGIN, no superuser, member of nothing) owns Hearth's schemas,
-- tables, sequences and functions, so a SECURITY DEFINER function runs with Hearth's rights only, never a
-- superuser's. The migrating role becomes a member of it when it is not a superuser: it creates Hearth's
-- objects as that role (SET ROLE), and pg_cron jobs it owns keep their rights.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hearth_owner') THEN
        CREATE ROLE hearth_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role('hearth_owner', 'MEMBER') THEN
        EXECUTE format('GRANT hearth_owner TO %I', current_user);
    END IF;
END
$$;

ALTER SCHEMA hearth OWNER TO hearth_owner;
ALTER SCHEMA hearth_data OWNER TO hearth_owner;
DO $$
DECLARE
    v_statement text;
BEGIN
    FOR v_statement IN
        SELECT format('ALTER TABLE %s OWNER TO hearth_owner', c.oid::regclass)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('hearth', 'hearth_data') AND c.relkind IN ('r', 'p', 'v', 'm')
        UNION ALL
        SELECT format('ALTER %s %s OWNER TO hearth_owner',
                      CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, p.oid::regprocedure)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('hearth', 'hearth_data')
    LOOP
        EXECUTE v_statement;
    END LOOP;
END
$$;

-- Default privileges follow the role that creates the objects: now hearth_owner. (Revision 0001's
-- per-schema REVOKE EXECUTE FROM PUBLIC could not take effect: EXECUTE to PUBLIC is a global default.)
DO $$
DECLARE
    v_role text;
BEGIN
    FOR v_role IN
        SELECT DISTINCT pg_get_userbyid(d.defaclrole) FROM pg_default_acl d
         WHERE d.defaclnamespace = 'hearth_data'::regnamespace AND d.defaclrole <> 'hearth_owner'::regrole
           AND pg_has_role(d.defaclrole, 'MEMBER')
    LOOP
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA hearth_data REVOKE SELECT ON TABLES '
                       'FROM hearth_admin', v_role);
    END LOOP;
END
$$;
ALTER DEFAULT PRIVILEGES FOR ROLE hearth_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE hearth_owner IN SCHEMA hearth_data GRANT SELECT ON TABLES TO hearth_admin;

-- Identities stuck in a match that no longer exists (revision 0003 let a cleaned-up match session take
-- its match with it, leaving both connecting forever): idle again.
UPDATE hearth_data.identities i
   SET match_state = 'idle', match_session_id = NULL, queued_at = NULL
 WHERE i.match_state IN ('connecting', 'in_call')
   AND NOT EXISTS (SELECT FROM hearth_data.matches m WHERE m.session_id = i.match_session_id AND m.ended_at IS NULL);

-- Events get a time that rises with seq in every stream (created_at, the writer's transaction time, does
-- not: pruning by it could delete seq N+1 and keep N). Existing rows take the running maximum of
-- created_at along their stream; each stream row keeps its newest.
ALTER TABLE hearth_data.events ADD COLUMN emitted_at timestamptz;
UPDATE hearth_data.events e SET emitted_at = r.emitted_at
  FROM (SELECT stream_id, seq, max(created_at) OVER (PARTITION BY stream_id ORDER BY seq) AS emitted_at
          FROM hearth_data.events) r
 WHERE e.stream_id = r.stream_id AND e.seq = r.seq;
ALTER TABLE hearth_data.events ALTER COLUMN emitted_at SET NOT NULL;
CREATE INDEX events_emitted_at_idx ON hearth_data.events (emitted_at);
DROP INDEX hearth_data.events_created_at_idx;
ALTER TABLE hearth_data.sessions ADD COLUMN last_event_at timestamptz;
ALTER TABLE hearth_data.identities ADD COLUMN last_event_at timestamptz;
UPDATE hearth_data.sessions s SET last_event_at = e.emitted_at
  FROM (SELECT stream_id, max(emitted_at) AS emitted_at FROM hearth_data.events GROUP BY stream_id) e
 WHERE s.session_id = e.stream_id;
UPDATE hearth_data.identities i SET last_event_at = e.emitted_at
  FROM (SELECT stream_id, max(emitted_at) AS emitted_at FROM hearth_data.events GROUP BY stream_id) e
 WHERE i.identity_id = e.stream_id;
