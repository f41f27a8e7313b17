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
//! The slices of a pipeline commit independently to the same tables: when
//! two race, the pointer compare-and-swap lets one win and the other rebuilds
//! its snapshot on the fresh metadata (appends never conflict). The epoch
//! check is per slice; the counters and state are the pipeline's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use arrow::record_batch::RecordBatch;
use icehouse_api::pipelines::StartPosition;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::lease::{self, Lease};
use super::spec::PipelineSpec;
use super::{slices, Signal};
use crate::config::WorkerConfig;
use crate::iceberg::{self as ice, LoadedTable, Warehouse};
use crate::mapping::{self, DeadLetterBuilder, KafkaMessage, RowDecoder};

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

/// Nothing new for this long means the consumer has caught up with the topic:
/// twice the consumer's `fetch.wait.max.ms`, so a broker that holds every
/// fetch for that wait (tansu does) does not look drained mid-backlog.
const DRAINED_AFTER: Duration = Duration::from_millis(200);

/// Errors from librdkafka's callback, shown as the pipeline's last error.
#[derive(Default)]
struct ErrorContext {
    last: Mutex<Option<String>>,
}

impl ClientContext for ErrorContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, log_message, "librdkafka");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        *self.last.lock().unwrap() = Some(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for ErrorContext {}

type KafkaConsumer = StreamConsumer<ErrorContext>;

/// Everything one commit needs, handed to the commit task.
struct Batch {
    rows: Option<RecordBatch>,
    dead: Option<RecordBatch>,
    next_offsets: BTreeMap<i32, i64>,
    row_count: u64,
    dead_count: u64,
}

pub async fn run(
    pool: PgPool,
    config: WorkerConfig,
    lease: Lease,
    spec: PipelineSpec,
    mut signal: watch::Receiver<Signal>,
) -> anyhow::Result<Exit> {
    let warehouse = Arc::new(spec.warehouse()?);
    let (table, dead_table) = ensure_tables(&pool, &warehouse, &spec).await?;
    let tables = Arc::new(tokio::sync::Mutex::new((table, dead_table)));
    let table_schema = tables.lock().await.0.arrow_schema()?;

    let consumer = Arc::new(connect(&spec).await?);
    let mut topic_partitions = loop {
        match partitions_of(&consumer, &spec.topic).await {
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
    assign(&pool, &consumer, &spec, &partitions).await?;
    lease::set_state(&pool, &lease, "running").await?;
    let mut last_partition_check = std::time::Instant::now();

    let mut decoder = RowDecoder::new(&spec.mapping, table_schema, config.max_message_bytes)?;
    let pipeline_id = spec.id.to_string();
    let mut dead = DeadLetterBuilder::new(&pipeline_id);
    let mut next_offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let (mut count, mut bytes) = (0usize, 0usize);
    let flush_every = Duration::from_millis(spec.flush_interval_ms);
    let mut deadline = tokio::time::Instant::now() + flush_every;
    let mut last_message_at = tokio::time::Instant::now();
    let (drained_messages, drained_bytes) = (config.batch_max_messages / 10, config.batch_max_bytes / 10);
    let mut in_flight: Option<JoinHandle<anyhow::Result<Committed>>> = None;
    let mut failing = false;
    // librdkafka keeps reporting a broker that is down or frozen (on every
    // reconnect, or when a request times out); this long without a report
    // means it is back, even if the topic is idle.
    let quiet_for_recovery = Duration::from_secs(15);
    let mut last_error_at = std::time::Instant::now();

    loop {
        // Some(signal): leave the loop, draining or not.
        let mut leave: Option<(Signal, Exit)> = None;
        let flush_now = tokio::select! {
            msg = consumer.recv() => {
                match msg {
                    Ok(m) => {
                        let msg = owned(&m);
                        last_message_at = tokio::time::Instant::now();
                        bytes += msg.value.as_ref().map_or(0, Vec::len);
                        if let Err(rejection) = decoder.push(&msg) {
                            dead.push(&msg, &rejection, chrono::Utc::now());
                        }
                        next_offsets.insert(msg.partition, msg.offset + 1);
                        count += 1;
                        if failing {
                            failing = false;
                            lease::set_state(&pool, &lease, "running").await?;
                        }
                    }
                    Err(e) => {
                        let reported = consumer.context().last.lock().unwrap().take();
                        let reason = reported.unwrap_or_else(|| e.to_string());
                        last_error_at = std::time::Instant::now();
                        if !failing {
                            failing = true;
                            lease::set_failing(&pool, &lease, &format!("Kafka: {reason}")).await?;
                        }
                    }
                }
                count >= config.batch_max_messages || bytes >= config.batch_max_bytes
            }
            // A backlog was drained into a big batch: commit it now rather
            // than at its deadline (a small batch waits, so a slow topic
            // still gets one commit per interval, not one per message).
            _ = tokio::time::sleep_until(last_message_at + DRAINED_AFTER),
                if count >= drained_messages || bytes >= drained_bytes => true,
            _ = tokio::time::sleep_until(deadline) => {
                if !failing {
                    // librdkafka reports a dead broker through the error callback only.
                    let reported = consumer.context().last.lock().unwrap().take();
                    if let Some(reason) = reported {
                        failing = true;
                        last_error_at = std::time::Instant::now();
                        lease::set_failing(&pool, &lease, &format!("Kafka: {reason}")).await?;
                    }
                } else if consumer.context().last.lock().unwrap().take().is_some() {
                    last_error_at = std::time::Instant::now();
                } else if last_error_at.elapsed() > quiet_for_recovery {
                    failing = false;
                    lease::set_state(&pool, &lease, "running").await?;
                }
                if !failing && last_partition_check.elapsed() >= PARTITION_CHECK {
                    last_partition_check = std::time::Instant::now();
                    // A failed look is no news: the consumer reports broker trouble itself.
                    if let Ok(now) = partitions_of(&consumer, &spec.topic).await {
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
                true
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
        if let Some((how, exit)) = leave {
            // Settle the commit in flight, then (draining) commit what we have.
            if let Some(prev) = in_flight.take() {
                if prev.await?? == Committed::LeaseLost {
                    return Ok(Exit::LeaseLost);
                }
            }
            if how == Signal::Drain && count > 0 {
                let batch = take_batch(&mut decoder, &mut dead, &mut next_offsets, &mut count, &mut bytes);
                if commit(&pool, &warehouse, &tables, &lease, batch).await? == Committed::LeaseLost {
                    return Ok(Exit::LeaseLost);
                }
            }
            return Ok(exit);
        }
        if flush_now {
            deadline = tokio::time::Instant::now() + flush_every;
            if count == 0 {
                continue;
            }
            // One commit in flight: wait for the previous one before starting this one.
            if let Some(prev) = in_flight.take() {
                if prev.await?? == Committed::LeaseLost {
                    return Ok(Exit::LeaseLost);
                }
            }
            let batch = take_batch(&mut decoder, &mut dead, &mut next_offsets, &mut count, &mut bytes);
            let (pool, warehouse, tables, lease) = (pool.clone(), warehouse.clone(), tables.clone(), lease.clone());
            in_flight = Some(tokio::spawn(async move { commit(&pool, &warehouse, &tables, &lease, batch).await }));
        }
    }
}

fn take_batch(
    decoder: &mut RowDecoder,
    dead: &mut DeadLetterBuilder,
    next_offsets: &mut BTreeMap<i32, i64>,
    count: &mut usize,
    bytes: &mut usize,
) -> Batch {
    let row_count = decoder.len() as u64;
    let dead_count = dead.len() as u64;
    let rows = (row_count > 0).then(|| decoder.finish());
    let dead_rows = (dead_count > 0).then(|| dead.finish());
    *count = 0;
    *bytes = 0;
    Batch { rows, dead: dead_rows, next_offsets: std::mem::take(next_offsets), row_count, dead_count }
}

fn owned<M: Message>(m: &M) -> KafkaMessage {
    let headers = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
        .unwrap_or_default();
    KafkaMessage {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// The table and its dead-letter table, created if the control plane has not yet.
pub async fn ensure_tables(
    pool: &PgPool,
    warehouse: &Warehouse,
    spec: &PipelineSpec,
) -> anyhow::Result<(LoadedTable, LoadedTable)> {
    let mut tx = lease::begin_system(pool).await?;
    let tables =
        create_tables(&mut tx, warehouse, &spec.namespace, &spec.table_name, &spec.mapping, &spec.partition_by).await?;
    tx.commit().await?;
    Ok(tables)
}

/// Creates (idempotently) a pipeline's table, partitioned as asked, and its
/// dead-letter table `<table>_dead_letter`, inside the caller's transaction.
pub async fn create_tables(
    tx: &mut sqlx::PgConnection,
    warehouse: &Warehouse,
    namespace: &str,
    table: &str,
    mapping: &icehouse_api::pipelines::Mapping,
    partition_by: &[icehouse_api::pipelines::PartitionField],
) -> anyhow::Result<(LoadedTable, LoadedTable)> {
    use icehouse_api::pipelines::PartitionTransform as T;
    let partition: Vec<(&str, iceberg::spec::Transform)> = partition_by
        .iter()
        .map(|p| {
            let transform = match p.transform {
                T::Identity => iceberg::spec::Transform::Identity,
                T::Year => iceberg::spec::Transform::Year,
                T::Month => iceberg::spec::Transform::Month,
                T::Day => iceberg::spec::Transform::Day,
                T::Hour => iceberg::spec::Transform::Hour,
            };
            (p.column.as_str(), transform)
        })
        .collect();
    let main = ice::create_table(tx, warehouse, namespace, table, mapping::table_schema(mapping)?, &partition).await?;
    let dead_letter = format!("{table}_dead_letter");
    let dead = ice::create_table(tx, warehouse, namespace, &dead_letter, mapping::dead_letter_schema(), &[]).await?;
    Ok((main, dead))
}

async fn connect(spec: &PipelineSpec) -> anyhow::Result<KafkaConsumer> {
    let mut config = spec.kafka.client_config();
    config
        .set("group.id", format!("icehouse-{}", spec.id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Where a stored offset is no longer on the broker (retention), resume at the oldest.
        .set("auto.offset.reset", "earliest")
        // Bounded prefetch: memory per pipeline stays bounded while a commit is slow.
        .set("queued.max.messages.kbytes", "65536")
        .set("fetch.wait.max.ms", "100")
        .set("socket.timeout.ms", "10000")
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.max.ms", "2000")
        .set_log_level(RDKafkaLogLevel::Warning);
    config.create_with_context(ErrorContext::default()).context("creating the Kafka consumer")
}

/// The topic's partition ids, sorted. librdkafka's metadata call blocks, so
/// it runs off the async threads.
async fn partitions_of(consumer: &Arc<KafkaConsumer>, topic: &str) -> anyhow::Result<Vec<i32>> {
    let (consumer, name) = (consumer.clone(), topic.to_string());
    let md =
        tokio::task::spawn_blocking(move || consumer.fetch_metadata(Some(&name), Duration::from_secs(5))).await??;
    let t = md.topics().iter().find(|t| t.name() == topic).context("topic not in metadata")?;
    if let Some(err) = t.error() {
        anyhow::bail!("{err:?}");
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    anyhow::ensure!(!ids.is_empty(), "topic `{topic}` has no partitions");
    ids.sort_unstable();
    Ok(ids)
}

/// Assigns the slice's partitions at their stored next offsets; a partition
/// never consumed (the pipeline's first run, or one the topic gained since)
/// starts at the pipeline's start position, resolved once and stored so that
/// a restart does not skip or repeat anything.
async fn assign(
    pool: &PgPool,
    consumer: &KafkaConsumer,
    spec: &PipelineSpec,
    partitions: &[i32],
) -> anyhow::Result<()> {
    let mut tx = lease::begin_system(pool).await?;
    let stored: HashMap<i32, i64> =
        sqlx::query_as::<_, (i32, i64)>("SELECT partition, next_offset FROM pipeline_offsets WHERE pipeline_id = $1")
            .bind(spec.id)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let offset = match stored.get(&p) {
            Some(&o) => o,
            None => {
                let (low, high) = consumer.fetch_watermarks(&spec.topic, p, Duration::from_secs(5))?;
                let start = if spec.start_position == StartPosition::Latest { high } else { low };
                // Another holder of the partition (one just fenced by a
                // re-cut) may have resolved it first: its value stands.
                sqlx::query_scalar(
                    "INSERT INTO pipeline_offsets (pipeline_id, tenant_id, partition, next_offset) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (pipeline_id, partition) DO UPDATE SET next_offset = pipeline_offsets.next_offset
                     RETURNING next_offset",
                )
                .bind(spec.id)
                .bind(spec.tenant_id)
                .bind(p)
                .bind(start.max(0))
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tpl.add_partition_offset(&spec.topic, p, Offset::Offset(offset))?;
    }
    tx.commit().await?;
    consumer.assign(&tpl)?;
    Ok(())
}

/// Whether a batch landed.
#[derive(Debug, PartialEq, Eq)]
enum Committed {
    Yes,
    /// Another worker holds the slice, or it was re-cut: nothing was
    /// committed, and nothing more may be.
    LeaseLost,
}

/// Writes the batch's files once, then commits them with the offsets in one
/// fenced transaction, retrying on a lost race and checking a commit whose
/// outcome is unknown by its id before trying again.
async fn commit(
    pool: &PgPool,
    warehouse: &Warehouse,
    tables: &tokio::sync::Mutex<(LoadedTable, LoadedTable)>,
    lease: &Lease,
    batch: Batch,
) -> anyhow::Result<Committed> {
    let commit_id = Uuid::now_v7().to_string();
    let mut tables = tables.lock().await;
    let row_files = match batch.rows {
        Some(rows) => ice::write_data_files(warehouse, &tables.0, rows).await?,
        None => vec![],
    };
    let dead_files = match batch.dead {
        Some(dead) => ice::write_data_files(warehouse, &tables.1, dead).await?,
        None => vec![],
    };
    let offsets_json = serde_json::to_string(&batch.next_offsets)?;
    let summary = HashMap::from([
        ("icehouse.commit-id".to_string(), commit_id.clone()),
        ("icehouse.pipeline-id".to_string(), lease.pipeline_id.to_string()),
        ("icehouse.epoch".to_string(), lease.epoch.to_string()),
        ("icehouse.next-offsets".to_string(), offsets_json),
    ]);
    let mut backoff = Duration::from_millis(50);
    // Why the previous attempt did not return: a lost race (another slice or
    // writer moved the pointer: retry at once) or an unknown outcome (back off).
    let mut lost_race = false;
    for attempt in 0.. {
        if attempt > 0 {
            if lost_race {
                // A little jitter keeps slices that lost together from colliding again.
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 20)).await;
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            // Fresh metadata: another writer may have committed, or our own
            // previous attempt may have landed without us hearing back.
            let mut conn = pool.acquire().await?;
            let ns = tables.0.namespace.clone();
            let fresh_table =
                ice::load_table(&mut conn, warehouse, &ns, &tables.0.name).await?.context("table vanished")?;
            let fresh_dead =
                ice::load_table(&mut conn, warehouse, &ns, &tables.1.name).await?.context("table vanished")?;
            let landed =
                ice::has_commit(&fresh_table.metadata, &commit_id) || ice::has_commit(&fresh_dead.metadata, &commit_id);
            *tables = (fresh_table, fresh_dead);
            if landed {
                return Ok(Committed::Yes);
            }
        }
        let prepared_rows = if row_files.is_empty() {
            None
        } else {
            Some(ice::prepare_append(warehouse, &tables.0, row_files.clone(), summary.clone()).await?)
        };
        let prepared_dead = if dead_files.is_empty() {
            None
        } else {
            Some(ice::prepare_append(warehouse, &tables.1, dead_files.clone(), summary.clone()).await?)
        };

        let mut tx = lease::begin_system(pool).await?;
        if !lease::check_epoch(&mut tx, lease).await? {
            tx.rollback().await?;
            tracing::warn!(
                pipeline = %lease.pipeline_id, slice = lease.slice, epoch = lease.epoch, "lease lost; commit refused"
            );
            for prepared in prepared_rows.iter().chain(prepared_dead.iter()) {
                ice::discard_prepared(warehouse, prepared).await;
            }
            return Ok(Committed::LeaseLost);
        }
        let mut swapped = true;
        for prepared in prepared_rows.iter().chain(prepared_dead.iter()) {
            swapped &= ice::swap_pointer(&mut tx, warehouse, prepared).await?;
        }
        if !swapped {
            tx.rollback().await?;
            for prepared in prepared_rows.iter().chain(prepared_dead.iter()) {
                ice::discard_prepared(warehouse, prepared).await;
            }
            tracing::debug!(
                pipeline = %lease.pipeline_id, slice = lease.slice, "lost a commit race; retrying on fresh metadata"
            );
            lost_race = true;
            continue;
        }
        for (partition, next) in &batch.next_offsets {
            sqlx::query(
                "INSERT INTO pipeline_offsets (pipeline_id, tenant_id, partition, next_offset) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (pipeline_id, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
            )
            .bind(lease.pipeline_id)
            .bind(lease.tenant_id)
            .bind(partition)
            .bind(next)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE pipeline_leases SET rows_committed = rows_committed + $2, dead_letter_rows = dead_letter_rows + $3,
                    last_commit_at = now(), updated_at = now()
             WHERE pipeline_id = $1",
        )
        .bind(lease.pipeline_id)
        .bind(batch.row_count as i64)
        .bind(batch.dead_count as i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO pipeline_minutes (pipeline_id, tenant_id, minute, rows, dead_letter_rows)
             VALUES ($1, $2, date_trunc('minute', now()), $3, $4)
             ON CONFLICT (pipeline_id, minute) DO UPDATE
             SET rows = pipeline_minutes.rows + EXCLUDED.rows,
                 dead_letter_rows = pipeline_minutes.dead_letter_rows + EXCLUDED.dead_letter_rows",
        )
        .bind(lease.pipeline_id)
        .bind(lease.tenant_id)
        .bind(batch.row_count as i64)
        .bind(batch.dead_count as i64)
        .execute(&mut *tx)
        .await?;
        match tx.commit().await {
            Ok(()) => {
                for prepared in prepared_rows.iter().chain(prepared_dead.iter()) {
                    ice::finish_commit(warehouse, prepared).await;
                }
                if let Some(p) = prepared_rows {
                    tables.0 = p.into_loaded();
                }
                if let Some(p) = prepared_dead {
                    tables.1 = p.into_loaded();
                }
                return Ok(Committed::Yes);
            }
            Err(e) => {
                tracing::warn!(error = %e, commit_id, "commit outcome unknown; checking before retrying");
                lost_race = false;
            }
        }
    }
    unreachable!("the retry loop only ends by returning")
}
