-- Members join by invitation; passwords are changed by their owner or reset
-- through a link e-mailed to the account's address; with verified sign-up a
-- new tenant waits for its owner to confirm the address. Only a link that
-- went to the address makes an account for it, so no tenant sets or learns
-- the password of an account.

CREATE TABLE invitations (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    -- The link shown to the admin: it lets an account that exists join.
    token_hash   bytea NOT NULL,
    -- The link in the e-mail to the address: it may also make the account,
    -- since opening it proves the address (none when no mail was sent).
    mail_token_hash bytea,
    invited_by   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid REFERENCES users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX invitations_token_key ON invitations (token_hash);
CREATE UNIQUE INDEX invitations_mail_token_key ON invitations (mail_token_hash);
CREATE INDEX invitations_tenant_idx ON invitations (tenant_id, id);
-- At most one open invitation per address in a tenant: inviting again replaces it.
CREATE UNIQUE INDEX invitations_open_key ON invitations (tenant_id, lower(email)) WHERE accepted_at IS NULL;

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations USING (icehouse_visible(tenant_id))
    WITH CHECK (icehouse_visible(tenant_id));

-- Rows that belong to no tenant: only system code (log-in, reset, sign-up) sees them.
CREATE FUNCTION icehouse_system() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('icehouse.system', true), '') = 'on'
$$;

CREATE TABLE password_resets (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE UNIQUE INDEX password_resets_token_key ON password_resets (token_hash);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);

CREATE TABLE signup_requests (
    id             uuid PRIMARY KEY,
    email          text NOT NULL,
    tenant_name    text NOT NULL,
    password_hash  text NOT NULL,
    token_hash     bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE UNIQUE INDEX signup_requests_token_key ON signup_requests (token_hash);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['password_resets', 'signup_requests']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY system_only ON %I USING (icehouse_system()) WITH CHECK (icehouse_system())', t);
    END LOOP;
END $$;

-- Access tokens issued before a password change or reset are refused.
ALTER TABLE users ADD COLUMN password_changed_at timestamptz;
