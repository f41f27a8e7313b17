-- Row-level security as a wall: requests made for a tenant run under a
-- login of their own, a member of the group role `icehouse_tenant`, which
-- can never act as system code: `icehouse_system()` is true only for a
-- transaction that says `icehouse.system = 'on'` *and* whose role is not a
-- tenant role. A tenant session can set any setting it likes and still sees
-- only the rows of the tenant its transaction names. The catalog tables, the
-- accounts and the worker registry get policies too.
--
-- The roles are the operator's (creating roles needs a superuser or
-- CREATEROLE, which the application's own role must not have); see
-- docs/operations.md.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'icehouse_tenant') THEN
        RAISE EXCEPTION 'the role icehouse_tenant does not exist'
            USING HINT = 'As a superuser: CREATE ROLE icehouse_tenant NOLOGIN; '
                         'CREATE ROLE icehouse_api LOGIN PASSWORD ''...'' IN ROLE icehouse_tenant; '
                         'then set database.tenant_url to that login (docs/operations.md).';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION icehouse_system() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('icehouse.system', true), '') = 'on'
       AND NOT pg_has_role(current_user, 'icehouse_tenant', 'MEMBER')
$$;

CREATE OR REPLACE FUNCTION icehouse_visible(row_tenant uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT icehouse_system()
        OR row_tenant = nullif(current_setting('icehouse.tenant_id', true), '')::uuid
$$;

-- What tenant requests may touch at all (the policies decide which rows).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO icehouse_tenant;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO icehouse_tenant;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO icehouse_tenant;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO icehouse_tenant;
REVOKE ALL ON _sqlx_migrations FROM icehouse_tenant;

-- Accounts are global: a tenant sees those of its own members, and only
-- system code (sign-up, invitations, password changes) writes them.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY members_of_the_tenant ON users FOR SELECT
    USING (icehouse_system() OR EXISTS (SELECT FROM memberships m WHERE m.user_id = users.id));
CREATE POLICY system_writes ON users USING (icehouse_system()) WITH CHECK (icehouse_system());

-- A catalog is a destination (its id): a tenant sees the catalogs of its own.
-- Not forced on the owner (the system login), so Iceberg readers given that
-- login (PyIceberg's SqlCatalog on one's own machine) still see the catalog.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['iceberg_tables', 'iceberg_namespace_properties']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %1$I '
                       'USING (icehouse_system() OR EXISTS (SELECT FROM destinations d WHERE d.id::text = %1$I.catalog_name)) '
                       'WITH CHECK (icehouse_system() OR EXISTS (SELECT FROM destinations d WHERE d.id::text = %1$I.catalog_name))', t);
    END LOOP;
END $$;

-- The worker registry is the data plane's own.
ALTER TABLE workers ENABLE ROW LEVEL SECURITY;
ALTER TABLE workers FORCE ROW LEVEL SECURITY;
CREATE POLICY system_only ON workers USING (icehouse_system()) WITH CHECK (icehouse_system());
