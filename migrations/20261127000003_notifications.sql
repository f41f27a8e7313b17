-- Notifications for admins: every change of a pipeline's state into
-- `failing`, every new error while it fails, and its recovery. Written by a
-- trigger on the pipeline's status row, so whichever process changes the
-- state (a worker, the scheduler, the API) cannot forget to notify.
CREATE TABLE notifications (
    id             bigserial PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    pipeline_id    uuid REFERENCES pipelines (id) ON DELETE SET NULL,
    -- Kept with the row so it still reads well after the pipeline is deleted.
    pipeline_name  text,
    kind           text NOT NULL CHECK (kind IN ('pipeline_failing', 'pipeline_error', 'pipeline_recovered')),
    message        text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_tenant_id ON notifications (tenant_id, id DESC);

-- What each member has read: everything up to `read_up_to`.
CREATE TABLE notification_reads (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    read_up_to  bigint NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['notifications', 'notification_reads']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (icehouse_visible(tenant_id)) '
                       'WITH CHECK (icehouse_visible(tenant_id))', t);
    END LOOP;
END $$;

CREATE FUNCTION icehouse_notify_pipeline_state() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    pname text;
    kind text;
    msg text;
BEGIN
    IF NEW.state = 'failing' AND OLD.state IS DISTINCT FROM 'failing' THEN
        kind := 'pipeline_failing';
        msg := coalesce(NEW.last_error, 'unknown error');
    ELSIF NEW.state = 'running' AND OLD.state = 'failing' THEN
        kind := 'pipeline_recovered';
        msg := 'running again';
    ELSIF NEW.state = 'failing' AND NEW.last_error IS NOT NULL
          AND NEW.last_error IS DISTINCT FROM OLD.last_error
          -- A retry that hits the same error again is not news.
          AND NOT EXISTS (SELECT 1 FROM notifications n
                           WHERE n.pipeline_id = NEW.pipeline_id AND n.message = NEW.last_error
                             AND n.created_at > now() - interval '1 hour') THEN
        kind := 'pipeline_error';
        msg := NEW.last_error;
    ELSE
        RETURN NEW;
    END IF;
    SELECT p.name INTO pname FROM pipelines p WHERE p.id = NEW.pipeline_id;
    INSERT INTO notifications (tenant_id, pipeline_id, pipeline_name, kind, message)
    VALUES (NEW.tenant_id, NEW.pipeline_id, pname, kind, left(msg, 2000));
    RETURN NEW;
END $$;

CREATE TRIGGER pipeline_leases_notify
    AFTER UPDATE OF state, last_error ON pipeline_leases
    FOR EACH ROW EXECUTE FUNCTION icehouse_notify_pipeline_state();
