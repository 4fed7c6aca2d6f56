-- Hearth 0006, run by the migrating role before the functions are loaded (as hearth_owner): the role
-- hearth_publisher (hearth.publish).

-- Roles are the cluster's: another database may have created it already.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hearth_publisher') THEN
        CREATE ROLE hearth_publisher NOLOGIN;
    END IF;
END
$$;

SET ROLE hearth_owner;
GRANT USAGE ON SCHEMA hearth TO hearth_publisher;
RESET ROLE;
