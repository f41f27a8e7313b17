-- The control-plane schema: tenants, users, memberships, tokens, connections,
-- destinations, pipelines and the audit log.
--
-- Row-level security is the second wall behind the application's own tenant
-- scoping: every tenant-owned table only shows rows of the tenant named by the
-- transaction-local setting `icehouse.tenant_id`. Code that legitimately works
-- across tenants (log-in, token lookup, the scheduler, workers) says so with
-- `icehouse.system = 'on'`. FORCE makes the policies apply to the table owner
-- too; the application role must not be a superuser (superusers bypass RLS).

CREATE FUNCTION icehouse_visible(row_tenant uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('icehouse.system', true), '') = 'on'
        OR row_tenant = nullif(current_setting('icehouse.tenant_id', true), '')::uuid
$$;

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenants_name_key ON tenants (lower(name));

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL,
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE memberships (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- Refresh tokens rotate: each use marks the token used and issues a new one in
-- the same family. Presenting a used token again revokes the whole family.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    token_hash    bytea NOT NULL UNIQUE,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    CONSTRAINT api_tokens_tenant_name_key UNIQUE (tenant_id, name)
);

CREATE TABLE connections (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               text NOT NULL,
    bootstrap_servers  text[] NOT NULL,
    security_protocol  text NOT NULL
        CHECK (security_protocol IN ('PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL')),
    sasl_mechanism     text CHECK (sasl_mechanism IN ('PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512')),
    sasl_username      text,
    -- AES-256-GCM: 12-byte nonce || ciphertext+tag, under the configured master key.
    sasl_password_enc  bytea,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connections_tenant_name_key UNIQUE (tenant_id, name),
    CONSTRAINT connections_tenant_id_key UNIQUE (tenant_id, id)
);

CREATE TABLE destinations (
    id                        uuid PRIMARY KEY,
    tenant_id                 uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                      text NOT NULL,
    warehouse_uri             text NOT NULL,
    s3_endpoint               text,
    s3_region                 text,
    s3_access_key_id          text,
    s3_secret_access_key_enc  bytea,
    default_namespace         text NOT NULL,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT destinations_tenant_name_key UNIQUE (tenant_id, name),
    CONSTRAINT destinations_tenant_id_key UNIQUE (tenant_id, id)
);

CREATE TABLE pipelines (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               text NOT NULL,
    connection_id      uuid NOT NULL,
    topic              text NOT NULL,
    destination_id     uuid NOT NULL,
    namespace          text NOT NULL,
    table_name         text NOT NULL,
    format             text NOT NULL CHECK (format IN ('json')),
    mapping            jsonb NOT NULL,
    partition_by       jsonb NOT NULL DEFAULT '[]',
    start_position     text NOT NULL CHECK (start_position IN ('earliest', 'latest')),
    flush_interval_ms  integer NOT NULL CHECK (flush_interval_ms BETWEEN 100 AND 600000),
    desired_state      text NOT NULL CHECK (desired_state IN ('running', 'paused')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pipelines_tenant_name_key UNIQUE (tenant_id, name),
    CONSTRAINT pipelines_table_key UNIQUE (destination_id, namespace, table_name),
    -- Same-tenant references only: a pipeline cannot point at another tenant's objects.
    CONSTRAINT pipelines_connection_fkey FOREIGN KEY (tenant_id, connection_id)
        REFERENCES connections (tenant_id, id),
    CONSTRAINT pipelines_destination_fkey FOREIGN KEY (tenant_id, destination_id)
        REFERENCES destinations (tenant_id, id)
);

CREATE TABLE audit_log (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    at                  timestamptz NOT NULL DEFAULT now(),
    actor_user_id       uuid,
    actor_api_token_id  uuid,
    action              text NOT NULL,
    resource_type       text NOT NULL,
    resource_id         text NOT NULL,
    before              jsonb,
    after               jsonb,
    request_id          text NOT NULL
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['memberships', 'refresh_tokens', 'api_tokens', 'connections',
                             'destinations', 'pipelines', 'audit_log']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (icehouse_visible(tenant_id)) '
                       'WITH CHECK (icehouse_visible(tenant_id))', t);
    END LOOP;
END $$;

-- Tenants are visible to their own members' transactions and to system code.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants USING (icehouse_visible(id)) WITH CHECK (icehouse_visible(id));
