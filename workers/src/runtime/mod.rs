//! The worker: registers itself, heartbeats, claims running pipelines whose
//! lease is free, and runs each under its lease until it is paused, deleted,
//! taken over, or the worker stops. Run as many workers as needed: they only
//! coordinate through Postgres.

pub mod ingest;
pub mod lease;
pub mod spec;

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::secrets::SecretBox;
use lease::Lease;

struct Running {
    lease: Lease,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Runs a worker until `shutdown` turns true; then stops every pipeline after
/// its current commit and gives the leases back.
pub async fn run_worker(
    pool: PgPool,
    secrets: SecretBox,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let worker_id = Uuid::now_v7();
    lease::register(&pool, worker_id).await?;
    tracing::info!(%worker_id, "worker registered");
    let ttl = Duration::from_secs(config.lease_ttl_secs);
    let mut running: HashMap<Uuid, Running> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(config.heartbeat_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        if let Err(e) = step(&pool, &secrets, &config, worker_id, ttl, &mut running).await {
            tracing::warn!(error = format!("{e:#}"), "worker step failed; retrying");
        }
    }

    for (_, r) in running.drain() {
        let _ = r.stop.send(true);
        let _ = r.task.await;
        let _ = lease::release(&pool, &r.lease, "starting").await;
    }
    Ok(())
}

async fn step(
    pool: &PgPool,
    secrets: &SecretBox,
    config: &WorkerConfig,
    worker_id: Uuid,
    ttl: Duration,
    running: &mut HashMap<Uuid, Running>,
) -> anyhow::Result<()> {
    let held: HashMap<Uuid, Lease> =
        lease::heartbeat(pool, worker_id, ttl).await?.into_iter().map(|l| (l.pipeline_id, l)).collect();

    // Pipelines whose lease another worker took, whose task ended, or that
    // should no longer run (paused, deleted).
    let ids: Vec<Uuid> = running.keys().copied().collect();
    let wanted: HashMap<Uuid, bool> = {
        let mut tx = lease::begin_system(pool).await?;
        let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, desired_state FROM pipelines WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.into_iter().map(|(id, s)| (id, s == "running")).collect()
    };
    for id in ids {
        let still_ours = held.get(&id).is_some_and(|l| l.epoch == running[&id].lease.epoch);
        let should_run = wanted.get(&id).copied().unwrap_or(false);
        if still_ours && should_run && !running[&id].task.is_finished() {
            continue;
        }
        let r = running.remove(&id).expect("present");
        let _ = r.stop.send(true);
        let _ = r.task.await;
        if still_ours {
            let state = if wanted.contains_key(&id) && !should_run { "paused" } else { "starting" };
            lease::release(pool, &r.lease, state).await?;
        }
    }

    let free = config.max_pipelines.saturating_sub(running.len()) as i64;
    for claimed in lease::claim(pool, worker_id, ttl, free).await? {
        tracing::info!(pipeline = %claimed.pipeline_id, epoch = claimed.epoch, "claimed pipeline");
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(supervise(pool.clone(), secrets.clone(), config.clone(), claimed, stop_rx));
        running.insert(claimed.pipeline_id, Running { lease: claimed, stop, task });
    }
    Ok(())
}

/// Runs one pipeline, restarting it after a failure (with the failure shown
/// as its last error) until it is stopped or its lease is lost.
async fn supervise(
    pool: PgPool,
    secrets: SecretBox,
    config: WorkerConfig,
    lease: Lease,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let outcome = match spec::load(&pool, &secrets, lease.pipeline_id).await {
            Ok(Some(spec)) => ingest::run(pool.clone(), config.clone(), lease, spec, stop.clone()).await,
            Ok(None) => return,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(exit) => {
                tracing::info!(pipeline = %lease.pipeline_id, ?exit, "pipeline run ended");
                return;
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::warn!(pipeline = %lease.pipeline_id, error = message, "pipeline failed; restarting");
                if lease::set_failing(&pool, &lease, &message).await.is_err() {
                    tracing::warn!(pipeline = %lease.pipeline_id, "could not record the failure");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
