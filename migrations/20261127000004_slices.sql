-- Slices: a pipeline's partitions split over several workers.
--
-- The scheduler's leader decides the slicing (how many slices, which
-- partitions each) from the topic's partition count and the number of live
-- workers; workers claim slices, not pipelines. Every claim takes a new epoch
-- from one global sequence, so epochs only grow, per slice and per pipeline;
-- every side effect of a holder (table commit, offsets, state) checks its
-- slice's epoch in the same transaction. A re-slice replaces all the slice
-- rows of a pipeline, so every old holder is fenced at once.
--
-- Lock order, to stay free of deadlocks: the pipeline's `pipeline_leases`
-- row first, then its slice rows, then the Iceberg pointers.

CREATE SEQUENCE lease_epochs;

CREATE TABLE pipeline_slices (
    pipeline_id       uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    slice             integer NOT NULL CHECK (slice >= 0),
    -- NULL: every partition the topic has, now or later (the one slice of a
    -- pipeline run by one worker, or whose partition count is not known yet).
    partitions        integer[] CHECK (cardinality(partitions) > 0),
    worker_id         uuid REFERENCES workers (id) ON DELETE SET NULL,
    epoch             bigint NOT NULL DEFAULT nextval('lease_epochs'),
    lease_expires_at  timestamptz,
    -- When the slice was created or given back: a worker that already holds
    -- a slice of the pipeline may take a second one only after a grace time.
    free_since        timestamptz NOT NULL DEFAULT now(),
    state             text NOT NULL DEFAULT 'starting'
        CHECK (state IN ('starting', 'running', 'paused', 'failing')),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, slice)
);
CREATE INDEX pipeline_slices_worker_id ON pipeline_slices (worker_id);

ALTER TABLE pipeline_slices ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline_slices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pipeline_slices USING (icehouse_visible(tenant_id))
    WITH CHECK (icehouse_visible(tenant_id));

-- Every existing pipeline starts with one slice of all its partitions (the
-- migration sees every tenant's rows; the setting ends with its transaction).
SELECT set_config('icehouse.system', 'on', true);
-- Epochs go on from the highest one handed out so far (snapshot summaries carry them).
SELECT setval('lease_epochs', greatest(coalesce(max(epoch), 0), 1)) FROM pipeline_leases;
INSERT INTO pipeline_slices (pipeline_id, tenant_id, slice, state)
SELECT pipeline_id, tenant_id, 0, CASE WHEN state = 'paused' THEN 'paused' ELSE 'starting' END
FROM pipeline_leases;

-- `pipeline_leases` stays the pipeline's status row (state over all its
-- slices, counters, last error, last commit) and gains the topic's partition
-- count as the workers last saw it (it only grows, like a Kafka topic's).
-- The claim itself moved to the slices.
ALTER TABLE pipeline_leases
    DROP COLUMN worker_id,
    DROP COLUMN epoch,
    DROP COLUMN lease_expires_at,
    ADD COLUMN partition_count integer CHECK (partition_count > 0);
