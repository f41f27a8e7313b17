-- Wake-ups for workers: a NOTIFY on `icehouse_work` whenever there may be a
-- slice to claim or to stop (a pipeline created, resumed, paused or deleted;
-- slices cut anew; a slice given back). Workers LISTEN and act at once
-- instead of at their next heartbeat; the heartbeat stays the fallback, so
-- a lost notification only costs that delay.
CREATE FUNCTION icehouse_notify_work() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('icehouse_work', '');
    RETURN NULL;
END $$;

CREATE TRIGGER pipelines_wake_workers
    AFTER INSERT OR DELETE OR UPDATE OF desired_state ON pipelines
    FOR EACH STATEMENT EXECUTE FUNCTION icehouse_notify_work();

CREATE TRIGGER pipeline_slices_wake_workers_on_cut
    AFTER INSERT OR DELETE ON pipeline_slices
    FOR EACH STATEMENT EXECUTE FUNCTION icehouse_notify_work();

CREATE TRIGGER pipeline_slices_wake_workers_on_release
    AFTER UPDATE OF worker_id ON pipeline_slices
    FOR EACH ROW WHEN (NEW.worker_id IS NULL AND OLD.worker_id IS NOT NULL)
    EXECUTE FUNCTION icehouse_notify_work();
