-- hearth_publisher may connect to Hearth's database (revision 0004 took CONNECT from PUBLIC): an
-- application's own role that holds it reaches Hearth through it. Only the database's owner (or a
-- superuser) may grant that; otherwise the operator is told what to run.
DO $$
DECLARE
    v_statements text := format('GRANT CONNECT ON DATABASE %I TO hearth_publisher;', current_database());
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE v_statements;
    ELSE
        RAISE NOTICE 'Hearth: only the owner of database % may let hearth_publisher connect. Run as its owner: %',
            current_database(), v_statements;
    END IF;
END
$$;
