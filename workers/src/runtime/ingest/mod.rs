//! One slice of a pipeline under one lease: Kafka → decode/map → Parquet → a
//! fenced commit of the table, its dead-letter table and the next offsets of
//! the slice's partitions, together.
//!
//! Exactly once comes from the commit, not from Kafka: the consumer is
//! `assign`ed at the next offsets stored in Postgres, and those offsets only
//! move in the same transaction that swaps the tables' metadata pointers and
//! checks the lease epoch. A crash anywhere before that commit leaves the
//! offsets where they were (the written files become orphans); a worker that
//! lost its lease cannot commit at all. Fetching goes on while the previous
//! batch commits (one commit in flight, which is also the back-pressure).
//!
//! The parts: [`consumer`] (the Kafka side), [`batching`] (when to flush),
//! [`health`] (when the slice is failing or running again) and [`commit`].
//! This module is the loop that ties them together.

mod batching;
mod commit;
mod consumer;
mod health;
mod positions;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::Message;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::batching::{BatchPolicy, Limits};
use self::commit::{commit, Batch, Committed, Tables};
use self::health::{Change, KafkaHealth};
use self::positions::{Delivery, Positions};
use super::spec::PipelineSpec;
use super::Signal;
use crate::config::{DeadLetterConfig, WorkerConfig};
use crate::coord::{self, lease, slices, Lease, SliceState};
use crate::egress::EgressError;
use crate::formats::RowDecoder;
use crate::iceberg::{self as ice, LoadedTable, Warehouse};
use crate::mapping::{DeadLetterBuilder, KafkaMessage};

/// Why a pipeline run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (worker shutdown, pause, delete): the last batch was committed.
    Stopped,
    /// Another worker holds the lease now, or the slice was re-cut; nothing
    /// more was committed.
    LeaseLost,
    /// The topic grew and this slice takes every partition: the buffered
    /// batch was committed; run again to assign the new partitions.
    PartitionsChanged,
}

/// How often a running slice looks at the topic's partition count.
const PARTITION_CHECK: Duration = Duration::from_secs(10);

/// How often librdkafka's error reports are looked at (a dead broker shows
/// up only there) and the partition count is due for a look.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

pub async fn run(
    pool: PgPool,
    config: WorkerConfig,
    dead_letter: DeadLetterConfig,
    lease: Lease,
    spec: PipelineSpec,
    mut signal: watch::Receiver<Signal>,
) -> anyhow::Result<Exit> {
    let warehouse = Arc::new(spec.warehouse().await?);
    let deadline = Duration::from_secs(config.commit_timeout_secs.max(1));
    // Bounded like a commit: a silent bucket must not hold the slice (and
    // the connection of the transaction the tables are made in) for ever.
    let (table, dead_table) =
        tokio::time::timeout(deadline, ensure_tables(&pool, &warehouse, &spec)).await.map_err(|_| {
            anyhow::anyhow!(
                "the tables could not be loaded within {} s (is the warehouse answering?)",
                deadline.as_secs()
            )
        })??;
    let table_schema = table.arrow_schema()?;
    let dead_schema = dead_table.arrow_schema()?;
    let tables: Arc<Tables> = Arc::new(tokio::sync::Mutex::new((table, dead_table)));

    let consumer = consumer::SliceConsumer::new(consumer::connect(&spec).await?);
    let mut topic_partitions = loop {
        match consumer::partitions_of(&consumer, &spec.kafka, &spec.topic, config.max_topic_partitions).await {
            Ok(p) => break p,
            Err(e) => {
                lease::set_failing(&pool, &lease, &format!("cannot read topic `{}`: {e:#}", spec.topic)).await?;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = signal.changed() => return Ok(Exit::Stopped),
                }
            }
        }
    };
    slices::report_partition_count(&pool, spec.id, topic_partitions.len() as i32).await?;
    let partitions = match &lease.partitions {
        None => topic_partitions.clone(),
        Some(mine) => {
            let missing: Vec<i32> = mine.iter().copied().filter(|p| !topic_partitions.contains(p)).collect();
            anyhow::ensure!(
                missing.is_empty(),
                "topic `{}` has no partition {missing:?} (was it re-created with fewer partitions?)",
                spec.topic
            );
            mine.clone()
        }
    };
    let mut positions = Positions::new(consumer::assign(&pool, &consumer, &spec, &partitions).await?);
    lease::set_state(&pool, &lease, SliceState::Running).await?;
    let mut last_partition_check = Instant::now();

    let mut decoder = RowDecoder::new(spec.format, &spec.mapping, table_schema, config.max_message_bytes)?;
    let pipeline_id = spec.id.to_string();
    let mut dead = DeadLetterBuilder::new(&pipeline_id, dead_schema, dead_letter.max_value_bytes)?;
    let limits = Limits { max_messages: config.batch_max_messages, max_bytes: config.batch_max_bytes };
    let mut policy = BatchPolicy::new(limits, Duration::from_millis(spec.flush_interval_ms), Instant::now());
    let mut health = KafkaHealth::new(Instant::now());
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight: Option<JoinHandle<anyhow::Result<Committed>>> = None;

    loop {
        // Some(signal): leave the loop, draining or not.
        let mut leave: Option<(Signal, Exit)> = None;
        let mut change: Option<Change> = None;
        let flush_now = tokio::select! {
            msg = consumer.recv() => match msg {
                Ok(m) => match positions.deliver(m.partition(), m.offset()) {
                    Delivery::Repeat { expected, first } => {
                        if first {
                            tracing::warn!(
                                pipeline = %spec.id, partition = m.partition(), expected, got = m.offset(),
                                "the broker delivered offsets this slice already holds; dropping them"
                            );
                        }
                        false
                    }
                    delivery => {
                        if let Delivery::Gap { expected } = delivery {
                            tracing::warn!(
                                pipeline = %spec.id, partition = m.partition(), expected, got = m.offset(),
                                "the broker did not deliver the next offset"
                            );
                        }
                        let msg = consumer::owned(&m);
                        if let Err(rejection) = decoder.push(&msg) {
                            dead.push(&msg, &rejection, chrono::Utc::now());
                        }
                        change = health.on_message();
                        policy.add(message_bytes(&msg), Instant::now())
                    }
                },
                Err(e) => {
                    let reason = consumer.context().take_report().unwrap_or_else(|| e.to_string());
                    change = health.on_error(reason, Instant::now());
                    false
                }
            },
            _ = tokio::time::sleep_until(policy.due_at()) => true,
            _ = housekeeping.tick() => {
                change = health.on_tick(consumer.context().take_report(), Instant::now());
                if !health.is_failing() && last_partition_check.elapsed() >= PARTITION_CHECK {
                    last_partition_check = Instant::now();
                    // A failed look is no news: the consumer reports broker trouble
                    // itself. A topic grown past what a pipeline reads, or a broker
                    // the egress policy refuses, fails the slice, which says so as
                    // it starts again.
                    let looked = consumer::partitions_of(&consumer, &spec.kafka, &spec.topic, config.max_topic_partitions).await;
                    let fatal = |e: &anyhow::Error| {
                        e.is::<crate::kafka::PartitionsRefused>()
                            || e.downcast_ref::<EgressError>().is_some_and(|e| matches!(e, EgressError::Forbidden(_)))
                    };
                    if looked.as_ref().is_err_and(fatal) {
                        return Err(looked.unwrap_err());
                    }
                    if let Ok(now) = looked {
                        if now.len() > topic_partitions.len() {
                            tracing::info!(pipeline = %spec.id, partitions = now.len(), "the topic has new partitions");
                            slices::report_partition_count(&pool, spec.id, now.len() as i32).await?;
                            // A slice of named partitions waits for the scheduler to re-cut it.
                            if lease.partitions.is_none() {
                                leave = Some((Signal::Drain, Exit::PartitionsChanged));
                            }
                            topic_partitions = now;
                        }
                    }
                }
                false
            }
            changed = signal.changed() => {
                // A sender that is gone means the worker gave up on this slice.
                let now = if changed.is_ok() { *signal.borrow_and_update() } else { Signal::Abandon };
                match now {
                    Signal::Run => {}
                    Signal::Drain => leave = Some((Signal::Drain, Exit::Stopped)),
                    Signal::Abandon => leave = Some((Signal::Abandon, Exit::LeaseLost)),
                }
                false
            }
        };
        match change {
            Some(Change::Failing(reason)) => lease::set_failing(&pool, &lease, &reason).await?,
            Some(Change::Recovered) => lease::set_state(&pool, &lease, SliceState::Running).await?,
            None => {}
        }
        if let Some((how, exit)) = leave {
            // Settle the commit in flight, then (draining) commit what we have.
            if let Some(prev) = in_flight.take() {
                if prev.await?? == Committed::LeaseLost {
                    return Ok(Exit::LeaseLost);
                }
            }
            if how == Signal::Drain && !policy.is_empty() {
                let batch = take_batch(&mut decoder, &mut dead, &mut positions, &mut policy);
                if within(deadline, commit(&pool, &warehouse, &tables, &lease, batch)).await? == Committed::LeaseLost {
                    return Ok(Exit::LeaseLost);
                }
            }
            return Ok(exit);
        }
        if flush_now {
            if policy.is_empty() {
                policy.reset(Instant::now());
                continue;
            }
            // One commit in flight: wait for the previous one before starting this one.
            if let Some(prev) = in_flight.take() {
                if prev.await?? == Committed::LeaseLost {
                    return Ok(Exit::LeaseLost);
                }
            }
            let batch = take_batch(&mut decoder, &mut dead, &mut positions, &mut policy);
            let (pool, warehouse, tables, lease) = (pool.clone(), warehouse.clone(), tables.clone(), lease.clone());
            in_flight =
                Some(tokio::spawn(
                    async move { within(deadline, commit(&pool, &warehouse, &tables, &lease, batch)).await },
                ));
        }
    }
}

/// A commit, given up after `deadline`. Giving up is safe at any point: the
/// table's pointer and the offsets move in one fenced transaction, so a
/// commit either landed whole (the next run starts after it) or not at all
/// (its data files are orphans, and the messages are read again).
async fn within(
    deadline: Duration,
    commit: impl Future<Output = anyhow::Result<Committed>>,
) -> anyhow::Result<Committed> {
    tokio::time::timeout(deadline, commit).await.unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "a commit did not finish within {} s (is the warehouse answering?); starting again",
            deadline.as_secs()
        ))
    })
}

/// What a message counts against the batch's byte budget: its key, value
/// and headers (a topic of small values with big keys or headers is bounded too).
fn message_bytes(msg: &KafkaMessage) -> usize {
    let headers: usize = msg.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum();
    msg.key.as_ref().map_or(0, Vec::len) + msg.value.as_ref().map_or(0, Vec::len) + headers
}

fn take_batch(
    decoder: &mut RowDecoder,
    dead: &mut DeadLetterBuilder,
    positions: &mut Positions,
    policy: &mut BatchPolicy,
) -> Batch {
    let row_count = decoder.len() as u64;
    let dead_count = dead.len() as u64;
    let rows = (row_count > 0).then(|| decoder.finish());
    let dead_rows = (dead_count > 0).then(|| dead.finish());
    policy.reset(Instant::now());
    Batch { rows, dead: dead_rows, offsets: positions.take_batch(), row_count, dead_count }
}

/// The table and its dead-letter table, created if the control plane has not yet.
async fn ensure_tables(
    pool: &PgPool,
    warehouse: &Warehouse,
    spec: &PipelineSpec,
) -> anyhow::Result<(LoadedTable, LoadedTable)> {
    let tables = ice::create_pipeline_tables(
        coord::Scope::system(pool),
        warehouse,
        &spec.namespace,
        &spec.table_name,
        &spec.mapping,
        &spec.partition_by,
    )
    .await?;
    Ok(tables)
}
