-- Hearth's database itself: PUBLIC loses TEMP (no temporary objects to shadow a function's types with)
-- and CONNECT (LISTEN/NOTIFY has no privileges of its own: a role that cannot connect cannot listen), which
-- only Hearth's roles keep. Only the database's owner (or a superuser) may change that; otherwise the
-- operator is told what to run.
DO $$
DECLARE
    v_statements text := format('REVOKE TEMPORARY, CONNECT ON DATABASE %1$I FROM PUBLIC; '
                                'GRANT CONNECT ON DATABASE %1$I TO hearth_app, hearth_admin;', current_database());
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE v_statements;
    ELSE
        RAISE NOTICE 'Hearth: only the owner of database % may revoke what PUBLIC holds on it. Run as its owner: %',
            current_database(), v_statements;
    END IF;
END
$$;
