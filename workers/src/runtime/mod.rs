//! The worker: registers itself, heartbeats, claims free slices of running
//! pipelines (a slice is a set of a pipeline's partitions, see
//! [`crate::coord::slices`]),
//! and runs each under its lease until the pipeline is paused or deleted,
//! the slice is taken over or re-cut, or the worker stops. Run as many
//! workers as needed: they only coordinate through Postgres, and the
//! scheduler spreads every pipeline over them.

mod ingest;
mod spec;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use icehouse_api::pipelines::DesiredState;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::config::{DeadLetterConfig, WorkerConfig};
use crate::coord::{self, lease, Lease, SliceState};
use crate::egress::EgressPolicy;
use crate::secrets::SecretBox;

/// What a running slice is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Run,
    /// Commit what is buffered, then stop (pause, delete, worker shutdown).
    Drain,
    /// The lease is gone (taken over, re-cut): stop without committing more;
    /// a commit already in flight is settled by the epoch check.
    Abandon,
}

/// (pipeline, slice)
type SliceKey = (Uuid, i32);

struct Running {
    lease: Lease,
    signal: watch::Sender<Signal>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self, signal: Signal) -> Lease {
        let _ = self.signal.send(signal);
        let _ = self.task.await;
        self.lease
    }
}

/// What every slice of a worker runs with.
struct Settings {
    secrets: SecretBox,
    config: WorkerConfig,
    dead_letter: DeadLetterConfig,
    egress: Arc<EgressPolicy>,
}

/// Runs a worker until `shutdown` turns true; then stops every slice after
/// its current commit, gives the leases back and deregisters.
pub async fn run_worker(
    pool: PgPool,
    secrets: SecretBox,
    config: WorkerConfig,
    dead_letter: DeadLetterConfig,
    egress: EgressPolicy,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let settings = Arc::new(Settings { secrets, config, dead_letter, egress: Arc::new(egress) });
    let config = &settings.config;
    let mut worker_id = Uuid::now_v7();
    lease::register(&pool, worker_id).await?;
    tracing::info!(%worker_id, "worker registered");
    let mut running: HashMap<SliceKey, Running> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(config.heartbeat_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut wakeups = Wakeups::default();
    // Slices being stopped, each in a task of its own: a slice whose commit
    // hangs (a bucket that stopped answering) must not hold the heartbeat,
    // and with it every other slice's lease.
    let mut stopping = JoinSet::new();

    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = wakeups.next(&pool) => {}
            _ = shutdown.changed() => break,
        }
        if let Err(e) = step(&pool, &settings, &mut worker_id, &mut running, &mut stopping).await {
            tracing::warn!(error = format!("{e:#}"), "worker step failed; retrying");
        }
        while let Some(stopped) = stopping.try_join_next() {
            if let Err(e) = stopped {
                tracing::warn!(error = %e, "stopping a slice failed");
            }
        }
    }

    for (_, r) in running.drain() {
        let pool = pool.clone();
        stopping.spawn(async move {
            let lease = r.stop(Signal::Drain).await;
            let _ = lease::release(&pool, &lease, SliceState::Starting).await;
        });
    }
    // Each stop is bounded by the commit deadline (`worker.commit_timeout_secs`).
    while stopping.join_next().await.is_some() {}
    lease::deregister(&pool, worker_id).await?;
    Ok(())
}

/// Notifications on `icehouse_work` (migration `work_wakeups`): something
/// may be there to claim or to stop, so the worker steps at once rather than
/// at its next heartbeat. Only a shortcut: when listening fails, the
/// heartbeat alone drives the worker and listening is tried again later.
#[derive(Default)]
struct Wakeups {
    listener: Option<PgListener>,
    retry_at: Option<tokio::time::Instant>,
}

impl Wakeups {
    const CHANNEL: &'static str = "icehouse_work";
    const RETRY: Duration = Duration::from_secs(10);

    /// Resolves on the next notification; pending forever while not listening.
    async fn next(&mut self, pool: &PgPool) {
        if self.listener.is_none() {
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
            }
            match PgListener::connect_with(pool).await {
                Ok(mut listener) => match listener.listen(Self::CHANNEL).await {
                    Ok(()) => self.listener = Some(listener),
                    Err(e) => self.give_up_for_now(&e),
                },
                Err(e) => self.give_up_for_now(&e),
            }
        }
        let Some(listener) = self.listener.as_mut() else {
            return std::future::pending().await;
        };
        if let Err(e) = listener.recv().await {
            self.listener = None;
            self.give_up_for_now(&e);
        }
    }

    fn give_up_for_now(&mut self, error: &sqlx::Error) {
        tracing::debug!(error = %error, "not listening for work notifications; the heartbeat alone drives the worker");
        self.retry_at = Some(tokio::time::Instant::now() + Self::RETRY);
    }
}

async fn step(
    pool: &PgPool,
    settings: &Arc<Settings>,
    worker_id: &mut Uuid,
    running: &mut HashMap<SliceKey, Running>,
    stopping: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    let config = &settings.config;
    let ttl = Duration::from_secs(config.lease_ttl_secs);
    let Some(held) = lease::heartbeat(pool, *worker_id, ttl).await? else {
        // Declared dead (stalled past the scheduler's patience): everything it
        // held is free or someone else's. Start over as a new worker.
        tracing::warn!(worker_id = %*worker_id, "this worker was declared dead; dropping its slices and registering again");
        for (_, r) in running.drain() {
            stopping.spawn(async move {
                r.stop(Signal::Abandon).await;
            });
        }
        *worker_id = Uuid::now_v7();
        lease::register(pool, *worker_id).await?;
        tracing::info!(worker_id = %*worker_id, "worker registered");
        return Ok(());
    };
    let held: HashMap<SliceKey, Lease> = held.into_iter().map(|l| ((l.pipeline_id, l.slice), l)).collect();

    // Slices whose lease another worker took or the scheduler re-cut, whose
    // task ended, or whose pipeline should no longer run (paused, deleted).
    let keys: Vec<SliceKey> = running.keys().copied().collect();
    let pipeline_ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let wanted: HashMap<Uuid, bool> = {
        let mut tx = coord::begin_system(pool).await?;
        let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, desired_state FROM pipelines WHERE id = ANY($1)")
            .bind(&pipeline_ids)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut wanted = HashMap::new();
        for (id, desired) in rows {
            wanted.insert(id, coord::state::desired_state(&desired)? == DesiredState::Running);
        }
        wanted
    };
    for key in keys {
        let still_ours = held.get(&key).is_some_and(|l| l.epoch == running[&key].lease.epoch);
        let should_run = wanted.get(&key.0).copied().unwrap_or(false);
        if still_ours && should_run && !running[&key].task.is_finished() {
            continue;
        }
        let r = running.remove(&key).expect("present");
        if !still_ours {
            tracing::info!(pipeline = %key.0, slice = key.1, epoch = r.lease.epoch, "slice lease lost; stopping");
            stopping.spawn(async move {
                r.stop(Signal::Abandon).await;
            });
            continue;
        }
        // The lease stays ours (and renewed) until the slice has drained.
        let state = if wanted.contains_key(&key.0) && !should_run { SliceState::Paused } else { SliceState::Starting };
        let pool = pool.clone();
        stopping.spawn(async move {
            let lease = r.stop(Signal::Drain).await;
            if let Err(e) = lease::release(&pool, &lease, state).await {
                tracing::warn!(pipeline = %lease.pipeline_id, slice = lease.slice, error = format!("{e:#}"), "releasing a slice failed");
            }
        });
    }

    let free = config.max_pipelines.saturating_sub(running.len());
    for claimed in lease::claim(pool, *worker_id, ttl, ttl, free).await? {
        tracing::info!(
            pipeline = %claimed.pipeline_id, slice = claimed.slice, partitions = ?claimed.partitions,
            epoch = claimed.epoch, "claimed slice"
        );
        let (signal, signal_rx) = watch::channel(Signal::Run);
        let task = tokio::spawn(supervise(pool.clone(), settings.clone(), claimed.clone(), signal_rx));
        running.insert((claimed.pipeline_id, claimed.slice), Running { lease: claimed, signal, task });
    }
    Ok(())
}

/// Runs one slice, restarting it after a failure (with the failure shown
/// as its last error) until it is stopped or its lease is lost.
async fn supervise(pool: PgPool, settings: Arc<Settings>, lease: Lease, mut signal: watch::Receiver<Signal>) {
    // Restarts back off from half a second to 30 s; a run that ends well resets it.
    let restarts = || {
        ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .without_max_times()
            .build()
    };
    let mut backoff = restarts();
    loop {
        let outcome = match spec::load(&pool, &settings.secrets, &settings.egress, lease.pipeline_id).await {
            Ok(Some(spec)) => {
                ingest::run(
                    pool.clone(),
                    settings.config.clone(),
                    settings.dead_letter,
                    lease.clone(),
                    spec,
                    signal.clone(),
                )
                .await
            }
            Ok(None) => return,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(ingest::Exit::PartitionsChanged) => {
                tracing::info!(pipeline = %lease.pipeline_id, "the topic has new partitions; restarting to take them");
                backoff = restarts();
                continue;
            }
            Ok(exit) => {
                tracing::info!(pipeline = %lease.pipeline_id, slice = lease.slice, ?exit, "slice run ended");
                return;
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::warn!(pipeline = %lease.pipeline_id, slice = lease.slice, error = message, "slice failed; restarting");
                if lease::set_failing(&pool, &lease, &message).await.is_err() {
                    tracing::warn!(pipeline = %lease.pipeline_id, "could not record the failure");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(30))) => {}
            _ = signal.changed() => return,
        }
    }
}
