-- The Iceberg catalog, in the layout of the Iceberg JDBC catalog (the same
-- tables PyIceberg's SqlCatalog and Java's JdbcCatalog use), so external
-- readers can open the tables straight from Postgres. `catalog_name` is the
-- destination (warehouse) id. No row-level security here: external readers
-- connect without Icehouse's session settings; tenant scoping of the
-- Icehouse API goes through the destinations table.
CREATE TABLE iceberg_tables (
    catalog_name                varchar(255) NOT NULL,
    table_namespace             varchar(255) NOT NULL,
    table_name                  varchar(255) NOT NULL,
    metadata_location           varchar(1000),
    previous_metadata_location  varchar(1000),
    iceberg_type                varchar(5) DEFAULT 'TABLE',
    PRIMARY KEY (catalog_name, table_namespace, table_name)
);

CREATE TABLE iceberg_namespace_properties (
    catalog_name    varchar(255) NOT NULL,
    namespace       varchar(255) NOT NULL,
    property_key    varchar(255) NOT NULL,
    property_value  varchar(1000),
    PRIMARY KEY (catalog_name, namespace, property_key)
);

-- Workers register and heartbeat; a worker whose heartbeat is stale is dead
-- and its leases are free to claim.
CREATE TABLE workers (
    id            uuid PRIMARY KEY,
    host          text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

-- One lease per pipeline. `epoch` grows on every claim; every side effect of
-- the holder (table commits, offsets) checks it in the same transaction.
CREATE TABLE pipeline_leases (
    pipeline_id       uuid PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    worker_id         uuid REFERENCES workers (id) ON DELETE SET NULL,
    epoch             bigint NOT NULL DEFAULT 0,
    lease_expires_at  timestamptz,
    state             text NOT NULL DEFAULT 'starting'
        CHECK (state IN ('starting', 'running', 'paused', 'failing')),
    last_error        text,
    last_error_at     timestamptz,
    last_commit_at    timestamptz,
    rows_committed    bigint NOT NULL DEFAULT 0,
    dead_letter_rows  bigint NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The system of record for consumption: the next offset to read per
-- partition, written in the same transaction as the table commit.
CREATE TABLE pipeline_offsets (
    pipeline_id  uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL CHECK (next_offset >= 0),
    PRIMARY KEY (pipeline_id, partition)
);

-- Rows and dead-letter rows per minute, for status charts.
CREATE TABLE pipeline_minutes (
    pipeline_id       uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    minute            timestamptz NOT NULL,
    rows              bigint NOT NULL DEFAULT 0,
    dead_letter_rows  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (pipeline_id, minute)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['pipeline_leases', 'pipeline_offsets', 'pipeline_minutes']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (icehouse_visible(tenant_id)) '
                       'WITH CHECK (icehouse_visible(tenant_id))', t);
    END LOOP;
END $$;
