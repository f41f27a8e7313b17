-- Tasks: a general job queue (maintenance, stage runs, dead-letter replay,
-- webhook delivery are its kinds). The protocol lives in
-- `workers/src/coord/tasks.rs` and docs/tasks.md.
--
-- A task is claimed like a slice: `FOR UPDATE SKIP LOCKED`, a new epoch from
-- the global sequence `lease_epochs`, a lease renewed by the holder's
-- heartbeat; a lease not renewed in time (or whose worker was forgotten) is
-- free to claim again, and every side effect of the old holder is refused
-- because its epoch is no longer the task's.

CREATE TYPE task_state AS ENUM ('pending', 'running', 'done', 'failed');

CREATE TABLE tasks (
    id                uuid PRIMARY KEY,
    -- NULL: a system-wide task, seen only by system sessions.
    tenant_id         uuid REFERENCES tenants (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind <> ''),
    -- What the task works on (a table, a stage, a delivery); the kind gives it meaning.
    subject           text NOT NULL,
    state             task_state NOT NULL DEFAULT 'pending',
    run_at            timestamptz NOT NULL DEFAULT now(),
    -- Claims so far: an attempt whose holder died (lease expired) counts.
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      integer NOT NULL CHECK (max_attempts > 0),
    worker_id         uuid REFERENCES workers (id) ON DELETE SET NULL,
    -- The epoch of the latest claim; kept once finished (who finished it).
    epoch             bigint,
    lease_expires_at  timestamptz,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    -- Only a running task has a holder (NULL once its worker is forgotten) and a lease.
    CONSTRAINT tasks_lease_iff_running CHECK ((state = 'running') = (lease_expires_at IS NOT NULL)),
    CONSTRAINT tasks_holder_only_running CHECK (state = 'running' OR worker_id IS NULL),
    CONSTRAINT tasks_epoch_when_running CHECK (state <> 'running' OR epoch IS NOT NULL),
    CONSTRAINT tasks_finished_at CHECK ((state IN ('done', 'failed')) = (finished_at IS NOT NULL))
);

-- At most one waiting and one running task per (tenant, kind, subject): a
-- request for work already waiting joins it, while a request made during a
-- run waits for the next one (the running one may have read its inputs
-- already). Per tenant: two tenants' tables may have the same name, and one
-- tenant's task must neither absorb nor reveal nor hold back another's. A
-- system-wide task (no tenant) counts as the nil tenant.
CREATE UNIQUE INDEX tasks_one_pending
    ON tasks ((coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)), kind, subject)
    WHERE state = 'pending';
CREATE UNIQUE INDEX tasks_one_running
    ON tasks ((coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)), kind, subject)
    WHERE state = 'running';
CREATE INDEX tasks_due ON tasks (run_at) WHERE state = 'pending';
CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE state = 'running';
CREATE INDEX tasks_worker_id ON tasks (worker_id) WHERE worker_id IS NOT NULL;
CREATE INDEX tasks_tenant_id ON tasks (tenant_id);

ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
-- A NULL tenant is visible to system sessions only (`NULL = x` is not true).
CREATE POLICY tenant_isolation ON tasks USING (icehouse_visible(tenant_id))
    WITH CHECK (icehouse_visible(tenant_id));

-- Wake the workers when a task is claimable now: enqueued (or moved) to a
-- due time, or running without a holder because its worker was forgotten or
-- stopped. A retry scheduled later, or an expiring lease, is found by the
-- next claim (workers will claim on every heartbeat once tasks have kinds). Postgres folds equal notifications of one transaction
-- into one, so the row triggers cost one NOTIFY per transaction.
CREATE TRIGGER tasks_wake_workers_when_due
    AFTER INSERT OR UPDATE OF run_at, state ON tasks
    FOR EACH ROW WHEN (NEW.state = 'pending' AND NEW.run_at <= now())
    EXECUTE FUNCTION icehouse_notify_work();

CREATE TRIGGER tasks_wake_workers_on_orphan
    AFTER UPDATE OF worker_id ON tasks
    FOR EACH ROW WHEN (NEW.state = 'running' AND NEW.worker_id IS NULL AND OLD.worker_id IS NOT NULL)
    EXECUTE FUNCTION icehouse_notify_work();
